"""Expression labels grouped by face region: one order for the notebook's sliders and the viewer's folders."""

from __future__ import annotations

#: Slider groups by label keyword, in display order; the rest go to "other".
GROUPS = {
    "brows": ("brow",),
    "eyes": ("blink", "eye", "squint", "wide"),
    "jaw": ("jaw",),
    "mouth": ("mouth", "smile", "lip", "pucker", "funnel", "cheek", "dimple", "frown", "press", "stretch", "roll", "shrug"),
    "nose": ("nose", "sneer"),
}


def group_labels(labels: list[str]) -> dict[str, list[str]]:
    """Expression labels grouped for sliders (brows, eyes, jaw, mouth, nose, other); empty groups left out.

    >>> group_labels(["jaw_open", "smile", "tongueOut"])
    {'jaw': ['jaw_open'], 'mouth': ['smile'], 'other': ['tongueOut']}
    """
    out: dict[str, list[str]] = {name: [] for name in [*GROUPS, "other"]}
    for label in labels:
        low = label.lower()
        group = next((g for g, keys in GROUPS.items() if any(k in low for k in keys)), "other")
        out[group].append(label)
    return {g: v for g, v in out.items() if v}

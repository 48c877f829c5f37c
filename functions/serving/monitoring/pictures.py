"""Pictures of drift, drawn as SVG: a function ships no plotting library."""

from __future__ import annotations

from html import escape


def picture(feature: str, result: dict) -> str:
    """Reference vs current shares per bin as an SVG bar chart (no plotting library in a function)."""
    bins = result["bins"]
    top = max([*bins["reference"], *bins["current"], 1e-9])
    bar, gap, height = 14, 10, 160
    width = 60 + len(bins["labels"]) * (2 * bar + gap)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{max(width, 520)}" height="{height + 110}" '
             f'font-family="sans-serif" font-size="10">',
             f'<text x="10" y="14" font-size="12">{escape(feature)}: PSI {result["psi"]:.3f}, '
             f'{escape(result["test"])} p = {result["p_value"]:.2g} (grey: training, blue: now)</text>']
    for i, (label, r, c) in enumerate(zip(bins["labels"], bins["reference"], bins["current"], strict=True)):
        x = 50 + i * (2 * bar + gap)
        for offset, share, colour in ((0, r, "#9aa7b4"), (bar, c, "#1f5f9e")):
            h = share / top * height
            parts.append(f'<rect x="{x + offset}" y="{30 + height - h:.1f}" width="{bar}" height="{h:.1f}" '
                         f'fill="{colour}"><title>{escape(str(label))}: {share:.1%}</title></rect>')
        parts.append(f'<text x="{x}" y="{height + 45}" transform="rotate(45 {x} {height + 45})">'
                     f'{escape(str(label))}</text>')
    parts.append("</svg>")
    return "".join(parts)

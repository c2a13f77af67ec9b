"""Figures: pure functions from stored results to matplotlib figures, one module per analysis.

No figure function reads files or models; each takes `Result` records (or numbers taken from
them) and a colour per model, so every figure of a report draws a model in the same colour.
Report sections call the figure functions they need directly. The shared style (model colours,
axis labels with units, curves with their spread, heatmaps, bars, rendering to PNG/PDF) is
`coanalysis.figures.style`. Nothing here imports torch or `coanalysis.analyses`: derived numbers
and codecs come from `coanalysis.results.derived`.

May import: `results`, matplotlib, numpy. Never torch, a model, an analysis or the report.
"""

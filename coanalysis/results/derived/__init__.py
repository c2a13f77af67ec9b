"""Torch-free numbers and codecs derived from stored cells, shared by the analyses and the render side.

`coanalysis.figures` and `coanalysis.report` read results JSON through these modules (and
`coanalysis.results.store`), never through `coanalysis.analyses`, so rendering a report imports no
torch:
- `corruptions`: cell keys, mean accuracy over the standard corruptions, CE and mCE against a
  baseline or AlexNet's published ImageNet-C errors (`summarize`);
- `erf`: the ERF methods and mass levels, and the compact codecs of stored maps and images.
"""

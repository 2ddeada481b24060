"""Defaults shared by every layer, so that each is set in one place."""

#: Detection: the score from which a box counts as predicted: the classes explained
#: by default, the boxes D-RISE, the mask class map and the gradient methods'
#: detector scores read, per-box maps, the report's matching.
DEFAULT_SCORE_THR = 0.3

"""Saliency maps for people: colour maps, overlays, the files of a run, the report."""
from .colormap import colorize, overlay, to_uint8
from .explain_output import ExplainOutput, remove_temporary_files, summary_line
from .report import explain_run, sanity_run, write_report
from .write_queue import WriteQueue
from .writer import SaliencyWriter, predictions_of

__all__ = ['colorize', 'overlay', 'to_uint8', 'explain_run', 'sanity_run', 'write_report',
           'SaliencyWriter', 'WriteQueue', 'predictions_of', 'ExplainOutput',
           'remove_temporary_files', 'summary_line']

"""Paper tables as code: run records in, Markdown/LaTeX/CSV tables and learning curves out.

runs.py (the jobs), cells.py (aggregation over seeds, references), render.py (the three formats),
spec.py (conf/table/*.yaml), launch.py (running what a spec still needs), curves.py (figures).
The entry points are fmlab.commands.table (fmlab-table) and fmlab.commands.reproduce
(fmlab-reproduce).
"""

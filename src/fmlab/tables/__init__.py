"""Paper tables as code: run records in, Markdown/LaTeX/CSV tables and learning curves out.

runs.py (the jobs), cells.py (aggregation over seeds, references), render.py (the three formats),
spec.py (conf/table/*.yaml), launch.py (running what a spec still needs), curves.py (learning
curves), figure.py (a grid spec's metric against one of its keys, and that figure's table).
The entry points are fmlab.commands.table (fmlab-table) and fmlab.commands.reproduce
(fmlab-reproduce).
"""

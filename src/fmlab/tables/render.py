"""A table as text: Markdown, LaTeX (booktabs) and CSV. Cells arrive formatted; this only lays
them out, so the three outputs always say the same thing."""

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

from fmlab.tables.cells import FAILED, SHORT, UNOFFICIAL, Cell


@dataclass
class Entry:
    text: str
    bold: bool = False
    marks: str = ""  # footnote marks (†, ‡, §) after the text


@dataclass
class Grid:
    caption: str
    header: list[str]
    align: str  # one letter per column: l or r
    body: list[list[Entry]]
    notes: list[str] = field(default_factory=list)  # footnotes, each starting with its mark


def fmt(value: float | None, digits: int, signed: bool = False) -> str:
    if value is None:
        return "—"
    text = f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"
    return text.replace("-", "−")  # a typographic minus, as papers print it


def value_entry(cell: Cell, digits: int, bold: bool = False, with_n: bool = False) -> Entry:
    """``mean ± std`` of a cell (the mean alone for one seed, — for none)."""
    text = fmt(cell.mean, digits)
    if cell.std is not None:
        text += f" ± {fmt(cell.std, digits)}"
    if with_n and cell.n:
        text += f" ({cell.n})"
    return Entry(text, bold=bold and cell.n > 0, marks=cell.marks)


def footnotes(labelled: list[tuple[str, Cell]]) -> list[str]:
    """The footnotes behind the marks of these (label, cell) pairs, naming each job concerned."""
    failed = [
        f"{label}, seed {run.seed}: {run.status} ({run.where})"
        for label, cell in labelled
        for run in cell.problems
    ]
    short = [f"{label} ({cell.n} of {cell.expected})" for label, cell in labelled if cell.short]
    unofficial = [label for label, cell in labelled if cell.unofficial]
    notes = []
    if failed:
        notes.append(f"{FAILED} Jobs left out of the mean: " + "; ".join(failed) + ".")
    if short:
        notes.append(f"{SHORT} Fewer seeds than asked: " + "; ".join(short) + ".")
    if unofficial:
        notes.append(
            f"{UNOFFICIAL} Not the official data release (the run records say official: false "
            "and give the copy's fingerprint): " + "; ".join(unofficial) + "."
        )
    return notes


def markdown(grid: Grid) -> str:
    def cell(e: Entry) -> str:
        text = e.text.replace("|", "\\|")
        text = f"**{text}**" if e.bold else text
        return f"{text} {e.marks}" if e.marks else text

    rule = {"l": ":--", "r": "--:"}
    lines = [f"**{grid.caption}**", ""]
    lines.append("| " + " | ".join(h.replace("|", "\\|") for h in grid.header) + " |")
    lines.append("| " + " | ".join(rule[a] for a in grid.align) + " |")
    lines += ["| " + " | ".join(cell(e) for e in row) + " |" for row in grid.body]
    for note in grid.notes:
        lines += ["", note]
    return "\n".join(lines) + "\n"


_LATEX_ESCAPES = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "|": r"\textbar{}",
}
_LATEX_SYMBOLS = {
    "±": r"$\pm$",
    "−": r"$-$",
    "–": "--",
    "—": "---",
    "Δ": r"$\Delta$",
    "·": r"$\cdot$",
    "✓": r"\checkmark",
    "✗": r"$\times$",
    "≤": r"$\leq$",
    "≥": r"$\geq$",
    "×": r"$\times$",
    "α": r"$\alpha$",
    "β": r"$\beta$",
    "γ": r"$\gamma$",
    "ρ": r"$\rho$",
    "†": r"\textsuperscript{\dag}",
    "‡": r"\textsuperscript{\ddag}",
    "§": r"\textsuperscript{\S}",
}


def tex(text: str) -> str:
    """Plain text as LaTeX: special characters escaped, then the symbols tables use."""
    text = "".join(_LATEX_ESCAPES.get(c, c) for c in text)
    return "".join(_LATEX_SYMBOLS.get(c, c) for c in text)


def latex(grid: Grid) -> str:
    def cell(e: Entry) -> str:
        text = rf"\textbf{{{tex(e.text)}}}" if e.bold else tex(e.text)
        return text + tex(e.marks)

    lines = [
        r"% Needs \usepackage{booktabs} (and amssymb for \checkmark).",
        r"\begin{table}[t]",
        r"\centering",
        rf"\caption{{{tex(grid.caption)}}}",
        rf"\begin{{tabular}}{{{grid.align}}}",
        r"\toprule",
        " & ".join(tex(h) for h in grid.header) + r" \\",
        r"\midrule",
    ]
    lines += [" & ".join(cell(e) for e in row) + r" \\" for row in grid.body]
    lines += [r"\bottomrule", r"\end{tabular}"]
    if grid.notes:
        lines.append(r"\par\smallskip{\footnotesize")
        lines += [tex(note) + r" \\" for note in grid.notes[:-1]] + [tex(grid.notes[-1]) + "}"]
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def csv_text(rows: list[dict]) -> str:
    """Long format, one line per cell, full precision: for scripts, not for reading."""
    out = io.StringIO()
    if rows:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return out.getvalue()


def describe(metric: str, transform: str) -> str:
    """What a printed value is, for captions."""
    return {
        "raw": metric,
        "pct": f"{metric} (%)",
        "error_pct": f"error (%) = 100·(1 − {metric})",
    }[transform]


def write_tables(out: Path, grid: Grid, rows: list[dict]) -> list[Path]:
    """table.md, table.tex and table.csv in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "table.md", out / "table.tex", out / "table.csv"]
    for path, text in zip(paths, (markdown(grid), latex(grid), csv_text(rows)), strict=True):
        path.write_text(text)
    return paths

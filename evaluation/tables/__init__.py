"""Paper tables from run outputs: `python -m evaluation.tables table=<name> results=<dir>`.

`spec` reads one declarative YAML per paper table (`configs/tables/`), `plan` names each run's folder
and the command that fills it, `collect` reads metrics.json / speed results.json into cells beside the
paper's numbers, `render` writes markdown + CSV. See docs/REPRODUCE.md.
"""

from evaluation.tables.collect import fill
from evaluation.tables.spec import TableSpec, list_tables, load_spec, spec_from_mapping

__all__ = ["TableSpec", "fill", "list_tables", "load_spec", "spec_from_mapping"]

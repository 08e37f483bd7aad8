"""Reports: publication figures and a self-contained HTML page from tidy result rows.

``figures(df, out_dir)`` writes PNG/PDF figures; ``write_html(df, path)`` writes one HTML
file with the claims table, definitions, embedded figures, configs and run summary;
``build(store, out_html)`` does both from a results store.
"""

from .figures import FIGURES, figures
from .html import build, write_html

__all__ = ["FIGURES", "build", "figures", "write_html"]

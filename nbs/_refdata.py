"""Where the notebooks' tests find the private reference data; not part of the package.

The reference data (`golden/` outputs of the original code and `eval/` clips with ground truth) is a
folder with `reference/` and `eval/`: `$MT3_SHARED`, else `../shared` beside the repository. Without
it, the cells of a notebook whose first comment lines include `# needs reference data: <what>` are
skipped, and `reference_data` prints one line saying which and why. With `CI=true` its absence is a
failure, so CI runs every check. The hidden setup cell of each notebook does:

    import sys; sys.path.insert(0, '.')   # nbs/ (under nbdev_test the working folder is not on the path)
    from _refdata import reference_data, checkpoint_dir
    SHARED, GOLDEN, EVAL = reference_data('01_model')

An optional package works the same way: `optional_package('12_ray', 'ray', "pip install 'mt3_nb[ray]'")` is True when
it imports; else the cells marked `# needs ray` are skipped with one line saying so (with `CI=true`: a failure).
"""
from __future__ import annotations
import json, os, re, sys
from pathlib import Path

NBS = Path(__file__).resolve().parent
MARK = re.compile(r'#\s*needs reference data\s*(?::\s*(.*))?$')
NEEDS = re.compile(r'#\s*needs\s+([A-Za-z_][\w.]*)\s*$')   # `# needs ray`: an optional package
_MISSING: set = set()                                        # optional packages that are not installed


def shared_dir() -> Path:
    "The folder that should hold the reference data: `$MT3_SHARED`, else `../shared` beside the repository."
    env = os.environ.get('MT3_SHARED')
    return (Path(env).expanduser() if env else NBS.parent.parent/'shared').resolve()


def have_reference(d: Path | None = None) -> bool:
    d = d or shared_dir()
    return (d/'reference'/'golden').is_dir() and (d/'eval').is_dir()


def _marked(lines) -> str | None:
    "The label of a cell marked as needing the reference data (its leading comment lines), else None."
    for l in lines:
        l = l.strip()
        if not l: continue
        if not l.startswith('#'): return None
        if m := MARK.fullmatch(l): return m.group(1) or 'unnamed check'
    return None


def _needs(lines) -> set:
    "The optional packages a cell is marked as needing (`# needs ray` among its leading comment lines)."
    out = set()
    for l in lines:
        l = l.strip()
        if not l: continue
        if not l.startswith('#'): break
        if m := NEEDS.fullmatch(l): out.add(m.group(1))
    return out


def _skip_marked(lines: list[str]) -> list[str]:
    "IPython input transformer: a marked cell becomes `pass`."
    return ['pass\n'] if _marked(lines) is not None else lines


def _skip_missing(lines: list[str]) -> list[str]:
    "IPython input transformer: a cell that needs a missing optional package becomes `pass`."
    return ['pass\n'] if _needs(lines) & _MISSING else lines


def _install_skipper(on: bool):
    try: from IPython import get_ipython
    except ImportError: return
    ip = get_ipython()
    if ip is None: return
    ts = ip.input_transformers_cleanup
    ts[:] = [t for t in ts if getattr(t, '__name__', '') != '_skip_marked']
    if on: ts.append(_skip_marked)


def marked_checks(nb: str) -> list[str]:
    "Labels of the cells of notebook `nb` (name without .ipynb) that need the reference data."
    cells = json.loads((NBS/f'{nb}.ipynb').read_text())['cells']
    src = lambda c: c['source'] if isinstance(c['source'], str) else ''.join(c['source'])
    return [l for c in cells if c['cell_type'] == 'code' and (l := _marked(src(c).splitlines())) is not None]


def _ci() -> bool: return os.environ.get('CI', '').lower() in ('1', 'true', 'yes')


def optional_package(nb: str, module: str, install: str) -> bool:
    "Whether `module` imports; without it the cells marked `# needs <module>` are skipped and one line says so (CI=true: an error)."
    import importlib
    try: importlib.import_module(module); _MISSING.discard(module); return True
    except ImportError: pass
    why = f'{module} is not installed ({install})'
    if _ci(): raise AssertionError(f'{nb}: {why}; CI runs every check')
    _MISSING.add(module)
    try:
        from IPython import get_ipython
        ts = get_ipython().input_transformers_cleanup
        if _skip_missing not in ts: ts.append(_skip_missing)
    except (ImportError, AttributeError): pass
    cells = json.loads((NBS/f'{nb}.ipynb').read_text())['cells']
    n = sum(c['cell_type'] == 'code' and module in _needs(''.join(c['source']).splitlines()) for c in cells)
    msg = f'{nb}: skipped {n} check{"s" * (n != 1)} that need {module}: {why}'
    print(msg)
    if os.environ.get('IN_TEST'): print(msg, file=sys.__stderr__)
    return False


def reference_data(nb: str) -> tuple[Path, Path, Path]:
    "(SHARED, GOLDEN, EVAL) for notebook `nb`; without the data, marked cells are skipped (CI=true: an error)."
    d = shared_dir()
    ok = have_reference(d)
    _install_skipper(not ok)
    if not ok:
        why = f'no reference data at {d} (set MT3_SHARED to a folder holding reference/ and eval/)'
        if _ci(): raise AssertionError(f'{nb}: {why}; CI runs every check')
        checks = marked_checks(nb)
        if checks:
            names = '; '.join(dict.fromkeys(checks))
            msg = f'{nb}: skipped {len(checks)} check{"s" * (len(checks) != 1)} that need the reference data ({names}): {why}'
            print(msg)                                                     # the notebook's output
            if os.environ.get('IN_TEST'): print(msg, file=sys.__stderr__)  # nbdev_test's console (it hides cell outputs)
    return d, d/'reference'/'golden', d/'eval'


def checkpoint_dir() -> Path:
    "The T5X checkpoint folder for tests: the reference data's copy, else `$MT3_CHECKPOINT` or the download (fetched on first use)."
    local = shared_dir()/'checkpoints'/'mt3'
    if (local/'checkpoint').is_file(): return local
    from mt3_nb.checkpoint import default_checkpoint
    return default_checkpoint()


def use_reference_checkpoint():
    "Make the reference data's checkpoint the default (`MT3_CHECKPOINT`) when it is there and none is set."
    local = shared_dir()/'checkpoints'/'mt3'
    if (local/'checkpoint').is_file(): os.environ.setdefault('MT3_CHECKPOINT', str(local))

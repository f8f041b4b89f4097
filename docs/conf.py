"""Sphinx configuration of the pyro-partial documentation.

Build with ``sphinx-build -W --keep-going -b html docs docs/_build/html`` after ``pip install -e ".[docs]"``.
The API pages document every module of :mod:`pyro_partial` and :mod:`pyro_partial_models` with autodoc;
the tutorials are the notebooks of ``tutorials/`` (through the ``docs/tutorials`` symlink), shown with
their stored outputs by myst-nb and never executed; links between notebooks and to the repository's Python
files are resolved by ``resolve_repository_links``. Two checks turn gaps into build errors under ``-W``: a
public module, class, function, method or property without a docstring of its own (or one inherited from a
class of this project) logs a warning naming it, and so does a module that no API page documents.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from pathlib import Path

from docutils import nodes
from sphinx import addnodes
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment
from sphinx.util import logging
from sphinx.util.inspect import unpartial

import pyro_partial

project = "pyro-partial"
author = "the pyro-partial authors"
copyright = "the pyro-partial authors"
release = pyro_partial.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "myst_nb",
]

exclude_patterns = ["_build", "**/.ipynb_checkpoints", "Thumbs.db", ".DS_Store"]

# autodoc: objects in the order of their source, base classes shown; members without a docstring are kept so
# that the check below sees them (``check_docstring``). Type hints stay in the signatures.
autodoc_default_options = {"member-order": "bysource", "show-inheritance": True, "undoc-members": True}
autodoc_typehints = "signature"
autodoc_inherit_docstrings = True
autoclass_content = "class"

# Docstrings are reST (``:param x:``) and, in pyro_partial.metrics, Google style (``Args:``); no NumPy style.
napoleon_google_docstring = True
napoleon_numpy_docstring = False

# Tutorials: the notebooks' stored outputs are shown, nothing is executed at build time.
nb_execution_mode = "off"
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3

html_theme = "furo"
html_title = f"pyro-partial {release}"

logger = logging.getLogger(__name__)

DOCS = Path(__file__).resolve().parent
REPOSITORY = DOCS.parent
PACKAGES = ("pyro_partial", "pyro_partial_models")
# the folders the installed packages are read from, in the repository
PACKAGE_FOLDERS = {REPOSITORY / "pyro_partial": "pyro_partial", REPOSITORY / "models": "pyro_partial_models"}
CHECKED_KINDS = {"module", "class", "exception", "function", "method", "property"}


def _split_name(name: str) -> tuple[str, list[str]]:
    """Split a documented object's dotted ``name`` into its module's name and the attribute path inside it."""
    parts = name.split(".")
    for split in range(len(parts), 0, -1):
        try:
            importlib.import_module(".".join(parts[:split]))
        except (ImportError, ValueError):
            continue
        return ".".join(parts[:split]), parts[split:]
    return "", parts


def _owner(name: str) -> type | None:
    """The class that a documented member ``name`` (a dotted path ``module.Class.member``) belongs to."""
    module, path = _split_name(name)
    owner = importlib.import_module(module) if module else None
    for attribute in path[:-1]:
        owner = getattr(owner, attribute, None)
    return owner if inspect.isclass(owner) else None


def _own_docstring(what: str, name: str, obj: object) -> str | None:
    """The docstring ``obj`` has itself, or inherits from a class of this project; ``None`` without one."""
    if what in ("class", "exception"):
        doc = vars(obj).get("__doc__")
        # dataclasses and named tuples without a docstring get a generated one, ``Name(field, ...)``
        if doc and doc.startswith(f"{obj.__name__}("):
            doc = None
        return doc
    doc = getattr(obj, "__doc__", None)
    if doc or what not in ("method", "property"):
        return doc
    owner = _owner(name)
    member = name.rsplit(".", 1)[-1]
    # the docstring autodoc shows is the first one up the method resolution order
    for base in owner.__mro__[1:] if owner is not None else ():
        inherited = vars(base).get(member)
        doc = getattr(getattr(inherited, "fget", inherited), "__doc__", None)
        if doc:
            return doc if base.__module__.split(".")[0] in PACKAGES else None
    return None


def check_docstring(app: Sphinx, what: str, name: str, obj: object, options: dict, lines: list[str]) -> None:
    """Warn (an error under ``-W``) about a public object of this project that has no docstring.

    A method or property that overrides one of a class of this project may go without: autodoc shows the
    docstring it inherits. One that overrides a method of another library (``forward``, Lightning's hooks)
    needs its own, since the inherited text describes the library's method, not this one.
    """
    if what not in CHECKED_KINDS or name.split(".")[0] not in PACKAGES:
        return
    if any(part.startswith("_") for part in name.split(".")):
        return
    # autodoc also reads the docstrings of the names a module imports, then leaves them out of the page
    if what in ("method", "property"):
        defined_in = getattr(_owner(name), "__module__", None)
    elif what != "module":
        defined_in = getattr(inspect.unwrap(unpartial(obj)), "__module__", None)
    if what != "module" and defined_in != _split_name(name)[0]:
        return
    if not (_own_docstring(what, name, obj) or "").strip():
        location = None
        try:
            location = (inspect.getsourcefile(inspect.unwrap(getattr(obj, "fget", obj))), None)
        except TypeError:
            pass
        logger.warning("%s %s has no docstring", what, name, location=location)


def check_modules_documented(app: Sphinx) -> None:
    """Warn about a module of :data:`PACKAGES` that no ``automodule`` directive of ``docs/api`` documents."""
    documented = set()
    for page in (DOCS / "api").glob("*.rst"):
        documented.update(re.findall(r"^\.\. automodule:: (\S+)", page.read_text(), flags=re.MULTILINE))
    for package_name in PACKAGES:
        package = importlib.import_module(package_name)
        modules = [package_name]
        modules += [info.name for info in pkgutil.walk_packages(package.__path__, package_name + ".")]
        for module in modules:
            if module not in documented and not module.rsplit(".", 1)[-1].startswith("_"):
                logger.warning("module %s is in no automodule directive of docs/api", module)


def _module_of_file(path: Path) -> str | None:
    """The dotted name of the module a repository file ``path`` (absolute, resolved) is the source of."""
    if path.suffix != ".py":
        return None
    for folder, package in PACKAGE_FOLDERS.items():
        if path.is_relative_to(folder):
            parts = [package, *path.relative_to(folder).with_suffix("").parts]
            return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
    return None


def resolve_repository_links(app: Sphinx, doctree: nodes.document) -> None:
    """Point the Markdown links of a page that MyST cannot resolve by itself at their documentation pages.

    - ``docs/tutorials`` is a symlink to the repository's ``tutorials/``; Sphinx resolves symlinks in link
      paths, so MyST names a notebook linked from another one by its real path: it is mapped back to the
      document under ``docs/`` (``[...](other.ipynb)`` between tutorials then links the rendered notebook).
    - A link to a Python file of a package (``../pyro_partial/infer/semi_supervised.py``) would be a download
      of the source file: it becomes a link to the module's API reference.
    """
    symlinks = {path.resolve(): path.relative_to(DOCS) for path in DOCS.iterdir() if path.is_symlink()}
    for node in list(doctree.findall(addnodes.pending_xref)):
        target = Path(node.get("reftarget", ""))
        if node.get("reftype") != "myst" or node.get("refdomain") != "doc" or not target.is_absolute():
            continue
        for real, linked in symlinks.items():
            if target.is_relative_to(real):
                node["reftarget"] = (linked / target.relative_to(real)).as_posix()
    for node in list(doctree.findall(addnodes.download_reference)):
        _, path = app.env.relfn2path(node["reftarget"], node.get("refdoc", app.env.docname))
        module = _module_of_file(Path(path))
        if node.get("reftype") == "myst" and module is not None:
            reference = addnodes.pending_xref(
                "", refdomain="py", reftype="mod", reftarget=module, refexplicit=True, refwarn=True
            )
            reference["refdoc"] = node.get("refdoc", app.env.docname)
            for child in node.children:
                if isinstance(child, nodes.Element):
                    child["classes"] = [name for name in child["classes"] if name != "download"]
                reference += child
            node.replace_self(reference)


def _canonical_name(name: str) -> str | None:
    """The dotted name under which the API pages document the object of this project that ``name`` (a path
    through a re-export, e.g. ``pyro_partial.infer.SemiSupervisedELBO``) reaches; ``None`` for another."""
    if name.split(".")[0] not in PACKAGES:
        return None
    module, path = _split_name(name)
    if not module:
        return None
    parent, obj = None, importlib.import_module(module)
    for attribute in path:
        parent, obj = obj, getattr(obj, attribute, None)
        if obj is None and not (inspect.isclass(parent) and attribute == path[-1]):
            return None
    if inspect.ismodule(obj):
        return obj.__name__
    defined_in = getattr(obj, "__module__", None)
    if (inspect.isclass(obj) or inspect.isfunction(obj)) and defined_in:
        return f"{defined_in}.{obj.__qualname__}" if defined_in.split(".")[0] in PACKAGES else None
    if inspect.isclass(parent):  # an attribute, property or field of a class
        owner = _canonical_name(f"{parent.__module__}.{parent.__qualname__}")
        return f"{owner}.{path[-1]}" if owner else None
    return None


def resolve_reexported(
    app: Sphinx, env: BuildEnvironment, node: addnodes.pending_xref, contnode: nodes.TextElement
) -> nodes.reference | None:
    """Resolve a Python cross-reference to an object of this project named through a re-export
    (``:class:`~pyro_partial.infer.SemiSupervisedELBO```) or through a name its module imports
    (``:class:`MLP``` in :mod:`pyro_partial.nn.conv`) to the object's documentation."""
    if node.get("refdomain") != "py":
        return None
    target, module, owner = node["reftarget"], node.get("py:module"), node.get("py:class")
    candidates = [f"{module}.{owner}.{target}"] if module and owner else []
    candidates += [f"{module}.{target}"] if module else []
    candidates.append(target)
    domain = env.get_domain("py")
    for candidate in candidates:
        canonical = _canonical_name(candidate)
        if canonical is not None:
            for kind in (node["reftype"], "obj"):
                found = domain.resolve_xref(env, node["refdoc"], app.builder, kind, canonical, node, contnode)
                if found is not None:
                    return found
    return None


def setup(app: Sphinx) -> dict:
    """Connect the link resolution and the two checks."""
    app.connect("doctree-read", resolve_repository_links, priority=100)  # before the download collector
    app.connect("missing-reference", resolve_reexported)
    app.connect("autodoc-process-docstring", check_docstring)
    app.connect("builder-inited", check_modules_documented)
    return {"parallel_read_safe": True}

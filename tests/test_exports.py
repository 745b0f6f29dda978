"""The public names are curated both ways: what a module defines publicly is in its ``__all__``, and all of ``__all__`` exists.

The package root re-exports a sorted ``__all__``; every public module that declares an ``__all__``
lists every public function and class it defines (a helper not meant for users has a leading
underscore), so a new public name cannot be left out of the list, nor a removed one left in it.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import types

import pytest

import redtick
from redtick import errors


def _public_modules() -> list[str]:
    names = [info.name for info in pkgutil.walk_packages(redtick.__path__, "redtick.")]
    return sorted(name for name in names if not any(part.startswith("_") for part in name.split(".")))


def _defined_here(module: types.ModuleType) -> set[str]:
    """The public functions and classes ``module`` defines itself (not those it imports)."""
    return {name for name, value in vars(module).items()
            if not name.startswith("_") and (inspect.isfunction(value) or inspect.isclass(value))
            and value.__module__ == module.__name__}


def test_all_is_sorted_and_complete():
    assert redtick.__all__ == sorted(redtick.__all__)
    for name in redtick.__all__:
        assert hasattr(redtick, name), name


def test_every_public_name_of_the_package_root_is_in_all():
    public = {name for name, value in vars(redtick).items()
              if not name.startswith("_") and not isinstance(value, types.ModuleType)
              and getattr(value, "__module__", "").startswith("redtick")}
    assert sorted(public - set(redtick.__all__)) == [], "public names of redtick missing from redtick.__all__"


@pytest.mark.parametrize("name", _public_modules())
def test_a_modules_all_lists_what_it_defines_and_nothing_else(name):
    module = importlib.import_module(name)
    if not hasattr(module, "__all__"):
        pytest.skip(f"{name} declares no __all__")
    absent = [item for item in module.__all__ if not hasattr(module, item)]
    assert absent == [], f"{name}.__all__ names what {name} does not have"
    unlisted = sorted(_defined_here(module) - set(module.__all__))
    assert unlisted == [], (f"{name} defines public {unlisted} but leaves them out of __all__: list them, "
                            f"or give them a leading underscore if they are not for users")


def test_errors_share_one_root():
    for name in errors.__all__:
        assert issubclass(getattr(errors, name), errors.RedtickError)


def test_cache_response_comes_from_the_package_root_as_the_platform_doc_writes_it():
    from redtick import cache_response
    from redtick.web.response_cache import cache_response as defined

    assert cache_response is defined

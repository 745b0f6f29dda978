"""The package root's public names are a curated, sorted list, and every one exists."""

import redtick


def test_all_is_sorted_and_complete():
    assert redtick.__all__ == sorted(redtick.__all__)
    for name in redtick.__all__:
        assert hasattr(redtick, name), name


def test_errors_share_one_root():
    from redtick import errors

    for name in errors.__all__:
        assert issubclass(getattr(errors, name), errors.RedtickError)


def test_cache_response_comes_from_the_package_root_as_the_platform_doc_writes_it():
    from redtick import cache_response
    from redtick.web.response_cache import cache_response as defined

    assert cache_response is defined

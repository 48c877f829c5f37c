import not_a_module  # noqa: F401 - the import error is what the test wants

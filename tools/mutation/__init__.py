"""Mutation testing: Lua mutants (lua_mutants) and mutmut on the pure-Python modules
(python_mutants); each writes reports/mutation-*.md."""

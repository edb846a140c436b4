"""``python -m tests.support.engine_double --port P --name N --model M [...]``."""

from tests.support.engine_double.server import main

main()

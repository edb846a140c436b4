"""``python -m tests.engine_double --port P --name N --model M [...]``."""

from tests.engine_double.server import main

main()

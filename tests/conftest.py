pytest_plugins = [
    "tests.plugins.redis_fixtures",
]

pytest_plugins = [
    "tests.plugins.redis_fixtures",
    "tests.plugins.worker_fixtures",
    "tests.plugins.campaign_fixtures",
    "tests.plugins.emulator_fixtures",
    "tests.plugins.context_fixtures",
]


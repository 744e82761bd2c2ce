from hypothesis import settings

pytest_plugins = [
    "tests.plugins.redis_fixtures",
    "tests.plugins.worker_fixtures",
    "tests.plugins.campaign_fixtures",
    "tests.plugins.emulator_fixtures",
    "tests.plugins.context_fixtures",
    "tests.plugins.tcp_proxy",
]

# Property tests: hypothesis' default 100 examples in the full tier (`make test`); the fast tier
# (`make test-fast`) asks for `--hypothesis-profile=fast`, a fifth of them.
settings.register_profile("fast", max_examples=20)

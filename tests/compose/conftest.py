"""The compose tier (``make test-compose``, marker ``compose``): its timings, printed at the end of
the run (they go into the report, never into assertions)."""

TIMINGS: dict[str, float] = {}


def pytest_terminal_summary(terminalreporter):
    if TIMINGS:
        terminalreporter.section("compose smoke timings")
        for what, seconds in TIMINGS.items():
            terminalreporter.write_line(f"{what}: {seconds:.1f} s")

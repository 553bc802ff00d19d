from coursekit.timing import best_of, timed


def test_timed_returns_the_seconds_and_the_result():
    seconds, out = timed(lambda: sum(range(1000)))
    assert out == 499500 and 0.0 <= seconds < 1.0


def test_best_of_is_the_shortest_run_and_the_last_result(monkeypatch):
    import coursekit.timing as timing

    clock = iter([0.0, 3.0, 10.0, 11.0, 20.0, 22.0])          # runs of 3 s, 1 s and 2 s
    monkeypatch.setattr(timing.time, "perf_counter", lambda: next(clock))
    calls = []
    seconds, out = best_of(lambda: calls.append(1) or len(calls), 3)
    assert seconds == 1.0 and out == 3

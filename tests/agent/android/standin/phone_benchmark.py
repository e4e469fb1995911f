"""Stand-in phone benchmark binaries: ``benchmark_model`` and ``onnxruntime_perf_test``.

One script, installed by the fixtures under both names (with a ``#!`` line
for the test interpreter); it acts as the tool its file name says. It
times the model with the real runtime — LiteRT's ``Interpreter``
(``ai-edge-litert``) for ``benchmark_model``, onnxruntime for
``onnxruntime_perf_test`` — and prints what the real tool prints, in the
formats recorded in ``tests/agent/android/data`` (``benchmark_model``:
the ``INFO:``-prefixed generation; ``onnxruntime_perf_test``: the current
wording, ``-s`` statistics, one CSV row per run in its result file).

It also behaves like a process on a phone: it records its pid in
``$FAKE_PHONE/procs.log``, heats the stand-in SoC (``thermal.txt``) by
``heat_per_run_s`` °C per second it ran, and obeys ``$FAKE_PHONE/faults.txt``
(``key=value`` lines, checked at start and after every timed run;
``..._after_runs=0`` strikes before the runtime is loaded):
``crash_after_runs`` (SIGSEGV), ``hang_after_runs`` (stops and sleeps
forever), ``unplug_after_runs`` (sets the phone ``absent`` and sleeps
forever, as a process does on a phone that was unplugged), ``exit_status``
with ``exit_message`` (prints the message, ``\\n`` for a line break, and
exits with the status before loading the model).

It runs with ``python -S`` (a fresh interpreter per run; the runtime's
packages are put on ``sys.path`` from ``$FAKE_PHONE/site.txt`` only when it
loads the runtime), so a fault costs no import time.
"""

import math
import os
import signal
import sys
import time

PHONE = os.environ.get("FAKE_PHONE", ".")
NAME = os.path.basename(sys.argv[0])
STARTED = time.monotonic()


def faults():
    try:
        with open(os.path.join(PHONE, "faults.txt")) as f:
            lines = f.read().splitlines()
    except OSError:
        return {}
    return dict(line.split("=", 1) for line in lines if "=" in line)


def load_runtime_path():
    with open(os.path.join(PHONE, "site.txt")) as f:
        sys.path[:0] = f.read().split()


def add_heat():
    """Add ``heat_per_run_s`` °C per second this process ran to the phone's SoC."""
    path = os.path.join(PHONE, "thermal.txt")
    try:
        with open(path) as f:
            model = dict(line.split("=", 1) for line in f.read().splitlines() if "=" in line)
    except OSError:
        return
    now = time.time()
    tau = float(model.get("tau_s", "1"))
    excess = float(model.get("excess_c", "0"))
    if tau > 0:
        excess *= math.exp(-max(0.0, now - float(model.get("at", now))) / tau)
    excess += float(model.get("heat_per_run_s", "0")) * (time.monotonic() - STARTED)
    model["excess_c"], model["at"] = str(excess), str(now)
    with open(path + ".tmp", "w") as f:
        f.write("".join(f"{k}={v}\n" for k, v in model.items()))
    os.replace(path + ".tmp", path)


def fault_point(runs_done):
    told = {k: v for k, v in faults().items() if k.endswith("_after_runs")}
    if told.get("crash_after_runs") == str(runs_done):
        print("INFO: fleetnas stand-in: crashing now, as faults.txt says", flush=True)
        signal.signal(signal.SIGSEGV, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGSEGV)
    for key in ("hang_after_runs", "unplug_after_runs"):
        if told.get(key) == str(runs_done):
            sys.stdout.flush()
            if key == "unplug_after_runs":
                with open(os.path.join(PHONE, "state"), "w") as f:
                    f.write("absent\n")
            while True:
                time.sleep(3600)


def stat_line(times_us):
    """A ``count=`` line as TFLite's Stat::OutputToStream prints it."""
    if not times_us:
        return "count=0"
    ints = [round(t) for t in times_us]
    if len(set(ints)) == 1:
        return f"count={len(ints)} curr={ints[-1]}" + ("(all same)" if len(ints) > 1 else "")
    mean = sum(times_us) / len(times_us)
    std = math.sqrt(sum((t - mean) ** 2 for t in times_us) / len(times_us))
    return (f"count={len(ints)} first={ints[0]} curr={ints[-1]} min={min(ints)} max={max(ints)} "
            f"avg={mean:g} std={round(std)}")


def timed_loop(run, min_runs, min_s, max_s, faults_on):
    times = []
    start = time.perf_counter()
    while len(times) < min_runs or time.perf_counter() - start < min_s:
        t0 = time.perf_counter()
        run()
        times.append((time.perf_counter() - t0) * 1e6)
        if faults_on:
            fault_point(len(times))
        if time.perf_counter() - start > max_s:
            break
    return times


def benchmark_model(args):
    flags = dict(a[2:].split("=", 1) for a in args if a.startswith("--") and "=" in a)
    graph = flags["graph"]
    threads = int(flags.get("num_threads", "-1"))
    xnnpack = flags.get("use_xnnpack", "true") != "false"
    print("INFO: STARTING!")
    print("INFO: Log parameter values verbosely: [0]")
    print(f"INFO: Num threads: [{threads}]")
    print(f"INFO: Graph: [{graph}]")
    print(f"INFO: #threads used for CPU inference: [{threads}]")
    print(f"INFO: Loaded model {graph}", flush=True)
    load_runtime_path()
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    t0 = time.perf_counter()
    resolver = OpResolverType.AUTO if xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    interpreter = Interpreter(model_path=graph, num_threads=threads if threads > 0 else 1,
                              experimental_op_resolver_type=resolver)
    interpreter.allocate_tensors()
    for detail in interpreter.get_input_details():
        interpreter.set_tensor(detail["index"], np.ones(detail["shape"], detail["dtype"]))
    init_us = (time.perf_counter() - t0) * 1e6
    if xnnpack:
        print("INFO: Created TensorFlow Lite XNNPACK delegate for CPU.")
    print(f"INFO: The input model file size (MB): {os.path.getsize(graph) / 1e6:g}")
    print(f"INFO: Initialized session in {init_us / 1000:g}ms.")
    max_s = float(flags.get("max_secs", "150"))
    phases = []
    for runs, min_s, faults_on in (
        (int(flags.get("warmup_runs", "1")), float(flags.get("warmup_min_secs", "0.5")), False),
        (int(flags.get("num_runs", "50")), float(flags.get("min_secs", "1")), True),
    ):
        print(f"INFO: Running benchmark for at least {runs} iterations and at least {min_s:g} "
              f"seconds but terminate if exceeding {max_s:g} seconds.")
        times = timed_loop(interpreter.invoke, runs, min_s, max_s, faults_on)
        print("INFO: " + stat_line(times) + "\n", flush=True)
        phases.append(times)
    warm, timed = phases
    first = warm[0] if warm else timed[0]
    print(f"INFO: Inference timings in us: Init: {round(init_us)}, First inference: "
          f"{round(first)}, Warmup (avg): {sum(warm) / max(1, len(warm)):g}, "
          f"Inference (avg): {sum(timed) / len(timed):g}")
    print("INFO: Note: as the benchmark tool itself affects memory footprint, the following is "
          "only APPROXIMATE to the actual memory footprint of the model at runtime. Take the "
          "information at your discretion.")
    print("INFO: Memory footprint delta from the start of the tool (MB): init=1.5 overall=3.25")
    add_heat()
    return 0


def perf_test(args):
    options = {}
    positional = []
    i = 0
    while i < len(args):
        if args[i] in ("-I", "-s"):
            options[args[i]] = ""
        elif args[i].startswith("-"):
            options[args[i]] = args[i + 1]
            i += 1
        else:
            positional.append(args[i])
        i += 1
    model, result_file = positional
    load_runtime_path()
    import numpy as np
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = int(options.get("-x", "0"))
    so.inter_op_num_threads = int(options.get("-y", "0"))
    so.graph_optimization_level = {
        "0": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "1": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "2": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    }.get(options.get("-o", "99"), ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
    t0 = time.perf_counter()
    session = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    created = time.perf_counter() - t0
    feeds = {
        i.name: np.ones([d if isinstance(d, int) else 1 for d in i.shape],
                        np.int64 if "int64" in i.type else np.float32)
        for i in session.get_inputs()
    }

    def run():
        session.run(None, feeds)

    first = timed_loop(run, 1, 0.0, 1e9, False)[0]
    times = [t / 1e6 for t in timed_loop(run, int(options.get("-r", "1000")), 0.0, 1e9, True)]
    total = sum(times)
    print(f"Session creation time cost: {created:g} s")
    print(f"First inference time cost: {first / 1000:g} ms")
    print(f"Total inference time cost: {total:g} s")
    print(f"Total inference requests: {len(times)}")
    print(f"Average inference time cost: {total / len(times) * 1000:g} ms")
    print(f"Total inference run time: {total:g} s")
    print(f"Number of inferences per second: {len(times) / total:g} ")
    print("Avg CPU usage: 50 %")
    print("Peak working set size: 52428800 bytes")
    ordered = sorted(times)
    stats = [(name, ordered[min(len(ordered) - 1, int(len(ordered) * q))]) for name, q in
             (("P50", 0.5), ("P90", 0.9), ("P95", 0.95), ("P99", 0.99), ("P999", 0.999))]
    stats = [("Min", ordered[0]), ("Max", ordered[-1]), *stats]
    if "-s" in options:
        for name, value in stats:
            print(f"{name} Latency: {value:g} s")
    with open(result_file, "a") as out:
        for index, value in enumerate(times):
            stem = os.path.splitext(os.path.basename(model))[0]
            out.write(f"{stem},{value:g},52428800,50,{index}\n")
        if "-s" in options:
            out.write("\n" + "".join(f"{n} Latency is {v:g}sec\n" for n, v in stats))
    add_heat()
    return 0


def main():
    with open(os.path.join(PHONE, "procs.log"), "a") as log:
        log.write(f"{os.getpid()} {NAME}\n")
    fault_point(0)  # a fault "after 0 runs" strikes before the runtime is even loaded
    told = faults()
    if "exit_status" in told:
        print(told.get("exit_message", "").replace("\\n", "\n"), flush=True)
        return int(told["exit_status"])
    if NAME.startswith("benchmark_model"):
        return benchmark_model(sys.argv[1:])
    if NAME.startswith("onnxruntime_perf_test"):
        return perf_test(sys.argv[1:])
    print(f"stand-in tool does not know what {NAME} is", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())

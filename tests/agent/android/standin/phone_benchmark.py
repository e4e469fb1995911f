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
exits with the status before loading the model), ``no_op_profile`` (ignores
``--enable_op_profiling`` / ``-p``, as a build without the profiler would).
``onnxruntime_perf_test -p PREFIX`` turns on onnxruntime's own profiler, as
the real tool does (``EnableProfiling(PREFIX)``: ``PREFIX_<date>.json``).

With ``--enable_op_profiling=true`` the regular runs are profiled and the
"Operator-wise Profiling Info for Regular Benchmark Runs" tables printed in
the classic layout (``[start]`` column, tabs; recorded in
``data/benchmark_model_op_profile_mobilenet_riscv.txt``). Python LiteRT has
no op profiler, so each node is **timed on its own**: the stand-in cuts the
model into one-operator models (operator k alone, its non-constant inputs
made graph inputs, fed with ones) and, in the profiled phase, invokes the
whole model ``num_runs`` times (its times are the ``Timings`` line and the
phase's ``count=`` line), then each one-operator model ``num_runs`` times in
turn (a block each, so each runs with its own working set in cache, as it
does inside the whole model); node k's ``[avg ms]`` is the mean of its
one-operator model's times (each includes one interpreter invoke's
overhead, a few µs). Nothing ties
the node times to the whole model's: their sum is an independent
measurement of it. With XNNPACK on, the real tool reports a fully
delegated graph as one ``TfLiteXNNPackDelegate`` node; the stand-in does
the same (it assumes the delegate took every op, which holds for its test
models) and times the whole model as that node.

``benchmark_model``'s invokes (timed and profiled) are timed by the calling
thread's **CPU time** (``time.thread_time``), not wall time: a real phone
runs the benchmark pinned to cores of its own, while this stand-in shares a
busy host whose load would move every mean by tens of percent from one run
to the next; CPU time leaves out the time other processes held the core.
LiteRT runs a one-thread model on the calling thread; with more threads the
caller works (and waits) alongside its pool, so its CPU time stays close to
the invoke's wall time on an idle core.

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
# benchmark_model's runs are timed by the calling thread's CPU time (see the docstring)
PHONE_CLOCK = time.thread_time


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


def timed_loop(run, min_runs, min_s, max_s, faults_on, clock=time.perf_counter):
    """Times of ``run()`` in µs by ``clock`` (durations ``min_s``/``max_s``: wall time)."""
    times = []
    start = time.perf_counter()
    while len(times) < min_runs or time.perf_counter() - start < min_s:
        t0 = clock()
        run()
        times.append((clock() - t0) * 1e6)
        if faults_on:
            fault_point(len(times))
        if time.perf_counter() - start > max_s:
            break
    return times


def op_models(path):
    """One model per operator of the model (that operator alone, as bytes) and per operator
    (op type, output tensor names)."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    with open(path, "rb") as f:
        model = schema.ModelT.InitFromPackedBuf(bytearray(f.read()), 0)
    graph = model.subgraphs[0]
    operators = list(graph.operators)
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}

    def constant(t):
        buffer = graph.tensors[t].buffer
        return buffer > 0 and model.buffers[buffer].data is not None

    described, singles = [], []
    for op in operators:
        code = model.operatorCodes[op.opcodeIndex]
        tensors = [graph.tensors[t].name.decode() for t in op.outputs]
        described.append((names.get(max(code.builtinCode, code.deprecatedBuiltinCode), "CUSTOM"),
                          tensors))
        graph.operators = [op]
        graph.inputs = [t for t in op.inputs if t >= 0 and not constant(t)]
        graph.outputs = list(op.outputs)
        builder = flatbuffers.Builder(1024)
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
        singles.append(bytes(builder.Output()))
    return singles, described


def profile_row(node_type, start, first, avg, pct, cdf, name):
    return (f"\t{node_type:>24}\t{start:>17.3f}\t{first:>9.3f}\t{avg:>9.3f}\t{pct:>7.3f}%"
            f"\t{cdf:>7.3f}%\t{0:>10.3f}\t{1:>9}\t{name}")


def print_profile(header, nodes, run_times_us):
    """One profile in benchmark_model's classic layout; ``nodes``: (type, name, first_ms,
    avg_ms) in run order."""
    total = sum(avg for _, _, _, avg in nodes) or 1.0
    columns = ("\t             [node type]\t          [start]\t  [first]\t [avg ms]\t     [%]"
               "\t  [cdf%]\t  [mem KB]\t[times called]\t[Name]")
    print(header)

    def table(title, rows):
        print(f"============================== {title} ==============================")
        print(columns)
        cdf = 0.0
        for node_type, name, first, avg, start in rows:
            cdf += avg / total * 100
            print(profile_row(node_type, start, first, avg, avg / total * 100, cdf, name))
        print()

    starts, at = [], 0.0
    for _, _, _, avg in nodes:
        starts.append(at)
        at += avg
    rows = [(*node, start) for node, start in zip(nodes, starts, strict=True)]
    table("Run Order", rows)
    table("Top by Computation Time", sorted(rows, key=lambda r: -r[3])[:10])
    print(f"Number of nodes executed: {len(nodes)}")
    print("============================== Summary by node type ==============================")
    print("\t             [Node type]\t  [count]\t  [avg ms]\t    [avg %]\t    [cdf %]"
          "\t  [mem KB]\t[times called]")
    by_type = {}
    for node_type, _, _, avg in nodes:
        count, summed = by_type.get(node_type, (0, 0.0))
        by_type[node_type] = (count + 1, summed + avg)
    cdf = 0.0
    for node_type, (count, summed) in sorted(by_type.items(), key=lambda kv: -kv[1][1]):
        cdf += summed / total * 100
        print(f"\t{node_type:>24}\t{count:>9}\t{summed:>10.3f}\t{summed / total * 100:>10.3f}%"
              f"\t{cdf:>10.3f}%\t{0:>10.3f}\t{count:>9}")
    print()
    print("Timings (microseconds): " + stat_line(run_times_us))
    print("Memory (bytes): count=0")
    print(f"{len(nodes)} nodes observed\n\n\n")


def profiled_loop(interpreters, runs, max_s):
    """Per interpreter, in turn, its ``runs`` invokes' times in µs (faults checked after
    each of the first's, the whole model's)."""
    return [timed_loop(interpreter.invoke, runs, 0.0, max_s, i == 0, clock=PHONE_CLOCK)
            for i, interpreter in enumerate(interpreters)]


def node_times(blocks, described, xnnpack):
    """(type, name, first_ms, avg_ms) per node; blocks[0] are the whole model's times,
    blocks[1 + k] operator k's alone (module docstring)."""
    if xnnpack:
        full = [t / 1000 for t in blocks[0]]
        outputs = ", ".join(t for _, tensors in described[-1:] for t in tensors)
        return [("TfLiteXNNPackDelegate", f"[{outputs}]:{len(described)}", full[0],
                 sum(full) / len(full))]
    nodes = []
    for i, (op_type, tensors) in enumerate(described):
        times = [t / 1000 for t in blocks[1 + i]]
        nodes.append((op_type, f"[{', '.join(tensors)}]:{i}", times[0], sum(times) / len(times)))
    return nodes


def make_interpreter(model, threads, xnnpack):
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolver = OpResolverType.AUTO if xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    kind = {"model_path": model} if isinstance(model, str) else {"model_content": model}
    interpreter = Interpreter(**kind, num_threads=threads if threads > 0 else 1,
                              experimental_op_resolver_type=resolver)
    interpreter.allocate_tensors()
    for detail in interpreter.get_input_details():
        interpreter.set_tensor(detail["index"], np.ones(detail["shape"], detail["dtype"]))
    return interpreter


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
    # faults.txt ``no_op_profile``: a build that ignores the flag (prints no tables)
    profiling = flags.get("enable_op_profiling", "false") == "true" and (
        "no_op_profile" not in faults())
    if profiling:
        print("INFO: Enable op profiling: [1]")
    print(f"INFO: Loaded model {graph}", flush=True)
    load_runtime_path()
    t0 = time.perf_counter()
    interpreter = make_interpreter(graph, threads, xnnpack)
    init_us = (time.perf_counter() - t0) * 1e6
    singles, described = op_models(graph) if profiling else ([], [])
    profiled = [interpreter] if xnnpack else [
        interpreter, *(make_interpreter(m, threads, xnnpack) for m in singles)]
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
        if profiling and faults_on:
            blocks = profiled_loop(profiled, runs, max_s)
            times = blocks[0]
        else:
            times = timed_loop(interpreter.invoke, runs, min_s, max_s, faults_on,
                               clock=PHONE_CLOCK)
            for other in profiled[1:]:  # the one-operator models are warmed up with it
                other.invoke()
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
    if profiling:
        print_profile("INFO: Profiling Info for Benchmark Initialization:",
                      [("AllocateTensors", "AllocateTensors/0", init_us / 1000, init_us / 1000)],
                      [init_us])
        print_profile("INFO: Operator-wise Profiling Info for Regular Benchmark Runs:",
                      node_times(blocks, described, xnnpack), timed)
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
    if "-p" in options and "no_op_profile" not in faults():
        # as perf_test's EnableProfiling(prefix): onnxruntime writes <prefix>_<date>.json
        so.enable_profiling = True
        so.profile_file_prefix = options["-p"]
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
    if so.enable_profiling:
        session.end_profiling()
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

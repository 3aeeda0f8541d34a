using Microsoft.ML.OnnxRuntime;
using SafeTune.Autodiff.Losses;
using SafeTune.Onnx;
using SafeTune.Onnx.Shapes;

namespace SafeTune.Runtime.Training;

/// <summary>
/// The predicted peak memory of a training step, made before the first step from the graphs themselves: the frozen
/// weights, the trainable state (parameters, gradients, two optimizer moments) and the largest set of intermediate tensors
/// alive at once while the step runs.
/// </summary>
/// <param name="WeightBytes">Frozen weights, held once.</param>
/// <param name="TrainableStateBytes">Trainable parameters, their gradients and the optimizer's moments.</param>
/// <param name="ActivationBytes">The most bytes of intermediate tensors alive at one time in the training (or reference) graph.</param>
/// <param name="LargestTensorBytes">The largest single intermediate tensor.</param>
/// <param name="LargestTensor">Its name.</param>
/// <param name="UnknownTensors">Intermediate tensors whose size could not be inferred (not counted).</param>
/// <param name="AtPeak">The largest tensors alive at the activations' peak, by name.</param>
public sealed record MemoryEstimate(long WeightBytes, long TrainableStateBytes, long ActivationBytes, long LargestTensorBytes, string LargestTensor,
    int UnknownTensors, IReadOnlyList<(string Name, long Bytes)> AtPeak)
{
    /// <summary>
    /// ONNX Runtime's sessions, the .NET runtime and the rest of the process besides the tensors (measured: 0.46-0.51 GB
    /// resident once a Qwen2.5-0.5B LoRA run's training, evaluation and reference sessions are open).
    /// </summary>
    public const long RuntimeOverheadBytes = 500L << 20;

    /// <summary>
    /// The predicted peak resident memory of the process: the parts, the runtime's overhead and 60% more than the
    /// activations for kernel workspace and the arena's fragmentation over steps. Measured on Qwen2.5-0.5B LoRA steps
    /// (peak RSS over the first two steps): 2 x 128 standard 4,080 MiB for 5,045 MiB predicted (the liveness replay
    /// counts buffers ONNX Runtime reuses); 8 x 512 adaptive with activation checkpointing 4,799 MiB for 4,520 MiB
    /// predicted (the arena grows on the second step).
    /// </summary>
    public long TotalBytes => WeightBytes + TrainableStateBytes + ActivationBytes + ActivationBytes * 3 / 5 + RuntimeOverheadBytes;

    /// <summary>
    /// The settings of a training run that lower a step's memory and are not on yet, as clauses of advice:
    /// <c>--checkpoint-activations</c>, and <c>--base-dtype fp16</c> where adapters train over float32 frozen weights.
    /// </summary>
    public static string SettingsAdvice(bool checkpointing, bool adapters, Onnx.ElementType baseDtype) =>
        (checkpointing ? "" : ", add --checkpoint-activations")
        + (adapters && baseDtype == Onnx.ElementType.Float ? ", hold the frozen weights in 16 bits (--base-dtype fp16)" : "");

    /// <summary>One line: the total and its parts, in GB.</summary>
    public string Describe() => FormattableString.Invariant(
        $"about {Gb(TotalBytes)} GB (weights {Gb(WeightBytes)}, trainable state {Gb(TrainableStateBytes)}, activations {Gb(ActivationBytes)}, largest tensor {Gb(LargestTensorBytes)} GB '{LargestTensor}'; alive at the peak: {string.Join(", ", AtPeak.Take(4).Select(t => $"'{t.Name}' {Gb(t.Bytes)} GB"))})");

    internal static string Gb(long bytes) => (bytes / 1e9).ToString("0.0#", System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>
    /// The peak of intermediate bytes alive at once when <paramref name="model"/> runs with inputs of the given shapes:
    /// every node output lives from the node that makes it to its last reader (graph outputs to the end); graph inputs not
    /// named in <paramref name="external"/> count from the start. This is the plan ONNX Runtime's allocator follows, less
    /// its buffer reuse, so it errs high.
    /// </summary>
    public static (long Peak, long Largest, string LargestName, int Unknown, IReadOnlyList<(string Name, long Bytes)> AtPeak) Activations(Model model, IReadOnlyDictionary<string, long[]> inputShapes,
        IReadOnlySet<string> external)
    {
        ArgumentNullException.ThrowIfNull(model);
        var copy = model.Clone("memory estimate");
        var g = copy.Graph;
        foreach (var n in g.Nodes)
            foreach (var o in n.Outputs) o.Shape = null;
        foreach (var input in g.Inputs)
            if (inputShapes.TryGetValue(input.Name, out var dims)) input.Shape = Shape.Of(dims);
        ShapeInference.Run(copy);

        var order = g.TopologicalOrder();
        var index = new Dictionary<Node, int>(ReferenceEqualityComparer.Instance);
        for (int i = 0; i < order.Count; i++) index[order[i]] = i;
        long Bytes(Value v) => v.Shape is { } s && s.Dims.All(d => d.Value is not null) && v.ElementType.ByteSize() > 0
            ? checked(s.Dims.Aggregate(1L, (p, d) => checked(p * d.Value!.Value)) * v.ElementType.ByteSize())
            : -1;
        int LastUse(Value v) => v.IsGraphOutput ? order.Count : v.Consumers.Select(c => index.TryGetValue(c, out var i) ? i : order.Count).DefaultIfEmpty(-1).Max();

        var freeAt = new long[order.Count + 1];
        long live = 0, peak = 0, largest = 0;
        int peakAt = -1;
        string largestName = "";
        int unknown = 0;
        foreach (var input in g.Inputs)
        {
            if (external.Contains(input.Name)) continue;
            long b = Bytes(input);
            if (b > 0) live += b;
        }
        for (int i = 0; i < order.Count; i++)
        {
            if (FusedIntoMatMul(order[i])) { peak = Math.Max(peak, live); live -= freeAt[i]; continue; }
            // The fused head allocates its chunks' vocabulary-sized tensors while it runs, and frees them before it ends.
            if (FusedResponseHead.Is(order[i])) peak = Math.Max(peak, live + FusedResponseHead.WorkspaceBytes(order[i]));
            foreach (var o in order[i].Outputs)
            {
                if (o.Uses.Count == 0 && !o.IsGraphOutput) continue;
                long b = Bytes(o);
                if (b < 0) { unknown++; continue; }
                live += b;
                if (b > largest) (largest, largestName) = (b, o.Name);
                freeAt[Math.Min(LastUse(o), order.Count)] += b;
            }
            if (live > peak) peakAt = i;
            peak = Math.Max(peak, live);
            live -= freeAt[i];
        }

        // What is alive at the peak, largest first: where the memory goes.
        var atPeak = new List<(string Name, long Bytes)>();
        for (int j = 0; j <= peakAt && peakAt >= 0; j++)
            if (!FusedIntoMatMul(order[j]))
                foreach (var o in order[j].Outputs)
                    if ((o.Uses.Count > 0 || o.IsGraphOutput) && LastUse(o) > peakAt && Bytes(o) is var b && b > 0) atPeak.Add((o.Name, b));
        return (peak, largest, largestName, unknown, [.. atPeak.OrderByDescending(x => x.Bytes).Take(8)]);
    }

    // ONNX Runtime folds a Transpose of the last two axes that only MatMuls read into the MatMul (FusedMatMul with
    // transA/transB), so its output is never allocated: a transposed weight costs nothing.
    private static bool FusedIntoMatMul(Node n)
    {
        if (n.OpType != "Transpose" || n.Domain.Length != 0 || n.Outputs.Count != 1) return false;
        var o = n.Outputs[0];
        // Readers: MatMuls, or Transposes that undo it (the backward of a MatMul), which ONNX Runtime cancels.
        if (o.IsGraphOutput || o.Uses.Count == 0 || o.Consumers.Any(c => c.OpType is not ("MatMul" or "Transpose") || c.Domain.Length != 0)) return false;
        var perm = n.Attributes.TryGetValue("perm", out var a) ? a.Ints : null;
        if (perm is null || perm.Count < 2) return perm is null && o.Shape?.Rank == 2;
        for (int i = 0; i < perm.Count - 2; i++) if (perm[i] != i) return false;
        return perm[^2] == perm.Count - 1 && perm[^1] == perm.Count - 2;
    }

    /// <summary>
    /// The shape of each of a session's <paramref name="inputs"/>: from <paramref name="given"/> where named there, else
    /// from the token batch (inputs neither provides are left out).
    /// </summary>
    internal static Dictionary<string, long[]> InputShapes(IEnumerable<string> inputs, TokenBatch batch, IReadOnlyDictionary<string, long[]>? given)
    {
        var shapes = new Dictionary<string, long[]>(StringComparer.Ordinal);
        foreach (var input in inputs)
        {
            if (given is not null && given.TryGetValue(input, out var shape)) shapes[input] = shape;
            else if (batch.InputFor(input) is { } v)
                using (v) shapes[input] = v.GetTensorTypeAndShape().Shape;
        }
        return shapes;
    }

    /// <summary>
    /// The shapes of the per-token inputs a response objective and its reference pass take, for <paramref name="responseTokens"/>
    /// response positions and a vocabulary of <paramref name="vocab"/> (only those a graph declares are used).
    /// </summary>
    public static Dictionary<string, long[]> ResponseInputShapes(int responseTokens, long vocab, long hidden = 0)
    {
        long n = responseTokens;
        var shapes = new Dictionary<string, long[]>(StringComparer.Ordinal)
        {
            [ResponseNames.Index] = [n], [ResponseNames.SftWeight] = [n], [ResponseNames.KlWeight] = [n], [ResponseNames.ConstrainedWeight] = [n],
            [ResponseNames.TokenBeta] = [n], [ResponseNames.ReferenceTokenLogProbs] = [n], [ResponseNames.ReferenceLogProbs] = [n, vocab],
        };
        if (hidden > 0) shapes[ResponseNames.ReferenceHidden] = [n, hidden];
        return shapes;
    }

    /// <summary>The environment variable that caps the memory a run may plan for, in MiB (for a share of a larger machine).</summary>
    public const string LimitVariable = "SAFETUNE_MEMORY_LIMIT_MB";

    /// <summary>
    /// Throws <see cref="InsufficientMemoryException"/> when <paramref name="estimate"/> exceeds the memory the process can
    /// grow into (see <see cref="AvailableToProcess"/>); <paramref name="advice"/> says what to change.
    /// </summary>
    public static void EnsureFits(MemoryEstimate estimate, string what, string advice)
    {
        ArgumentNullException.ThrowIfNull(estimate);
        if (AvailableToProcess() is not { } available || estimate.TotalBytes <= available) return;
        throw new InsufficientMemoryException(
            $"{what} needs {estimate.Describe()}, more than the {Gb(available)} GB this process can use; it was stopped before the first step, " +
            $"so nothing is lost. {advice}", estimate);
    }

    /// <summary>
    /// The memory the process can still grow into: resident now plus what the system has available (Linux), capped by
    /// <see cref="LimitVariable"/> when it is set; null when unknown.
    /// </summary>
    public static long? AvailableToProcess()
    {
        long? limit = Environment.GetEnvironmentVariable(LimitVariable) is { Length: > 0 } text
            && long.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var mb) && mb > 0
            ? mb << 20
            : null;
        long? system = SystemAvailable();
        return system is { } s ? Math.Min(s, limit ?? long.MaxValue) : limit;
    }

    private static long? SystemAvailable() =>
        OperatingSystem.IsLinux() && MemoryAccount.ProcField("/proc/meminfo", "MemAvailable") is { } available
            ? available + MemoryAccount.Read().Rss
            : null;
}

/// <summary>A step predicted not to fit in memory; the message gives the estimate and what to change.</summary>
public sealed class InsufficientMemoryException(string message, MemoryEstimate estimate) : Exception(message)
{
    /// <summary>The estimate that did not fit.</summary>
    public MemoryEstimate Estimate { get; } = estimate;
}

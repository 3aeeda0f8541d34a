using System.Text.RegularExpressions;
using SafeTune.Onnx.Passes;

namespace SafeTune.Autodiff.Lora;

/// <summary>
/// Adds low-rank adapters (LoRA) to the linear projections of a model. Each adapted projection <c>y = MatMul(x, W)</c>
/// (W a 2-D float initializer read as [in, out], or through a Transpose [1, 0] of W stored [out, in]) gains two
/// initializers, <c>&lt;W&gt;.lora_A</c> [r, in] (Kaiming-uniform, U(-1/√in, 1/√in), as PEFT draws it) and
/// <c>&lt;W&gt;.lora_B</c> [out, r] (zeros), and the nodes <c>y' = y + (alpha / r) · MatMul(MatMul(x, Aᵀ), Bᵀ)</c>, named
/// under <c>&lt;MatMul node&gt;/lora</c>. Every former reader of y (graph outputs included) reads y', which takes over y's name;
/// the MatMul's own output is renamed <c>&lt;y&gt;_base</c>. With B = 0 the model computes exactly what it did before.
/// </summary>
/// <remarks>
/// Only the main graph is rewritten. The new nodes are appended after the existing ones, which keep their order, so that
/// <see cref="LoraMerge"/> gives back the original node list exactly; the graph is then not stored in topological order
/// (ONNX Runtime, <see cref="Graph.TopologicalOrder"/> and <see cref="BackwardBuilder"/> accept any order; call
/// <see cref="Graph.SortTopologically"/> before saving a file that other tools must read).
/// A projection whose weight is also read by other nodes (a tied LM head, a weight shared across layers) is not adapted
/// and is listed in <see cref="Skipped"/>: merging the update into it would change the other readers too.
/// Only <see cref="TrainableParameters"/> (the A and B matrices) are meant to be trained; W stays frozen.
/// </remarks>
public sealed class LoraPass : IGraphPass
{
    private readonly LoraOptions _options;
    private List<LoraAdapter> _adapters = [];
    private List<LoraCandidate> _skipped = [];

    /// <summary>Creates the pass; throws <see cref="SafeTune.Onnx.UserInputException"/> naming the option when <paramref name="options"/> is invalid.</summary>
    public LoraPass(LoraOptions? options = null)
    {
        _options = options ?? new LoraOptions();
        _options.Validate();
    }

    /// <inheritdoc/>
    public string Name => "LoRA";

    /// <summary>The settings.</summary>
    public LoraOptions Options => _options;

    /// <summary>The projections adapted by the last <see cref="Apply"/>, in graph order.</summary>
    public IReadOnlyList<LoraAdapter> Adapters => _adapters;

    /// <summary>Projections that matched the pattern but were not adapted because their weight is shared with other nodes.</summary>
    public IReadOnlyList<LoraCandidate> Skipped => _skipped;

    /// <summary>The trainable initializers: A then B of every adapter, in graph order.</summary>
    public IReadOnlyList<string> TrainableParameters => [.. _adapters.SelectMany(a => new[] { a.AName, a.BName })];

    /// <summary>Every projection of the main graph that LoRA could adapt, whether or not the pattern matches it, in graph order.</summary>
    public static IReadOnlyList<LoraCandidate> FindCandidates(Model model) =>
        [.. model.Graph.Nodes.Select(Inspect).OfType<Projection>().Select(p => p.ToCandidate())];

    /// <inheritdoc/>
    public void CheckPreconditions(Model model)
    {
        if (model.DefaultOpset < 13)
            throw new OnnxFormatException($"{Name}: the model imports ai.onnx opset {model.DefaultOpset}; LoRA needs opset 13 or newer.");
        var existing = model.Graph.Initializers.FirstOrDefault(v => IsLoraName(v.Name));
        if (existing is not null)
            throw new OnnxFormatException($"{Name}: the model already has LoRA adapters (initializer '{existing.Name}'); merge them before adding new ones.");
    }

    /// <inheritdoc/>
    public PassResult Apply(Model model)
    {
        _adapters = [];
        _skipped = [];
        var g = model.Graph;
        var regex = _options.CompilePattern();
        var candidates = g.Nodes.Select(Inspect).OfType<Projection>().ToList();
        var matched = candidates.Where(p => regex.IsMatch(p.Label) || regex.IsMatch(p.Weight.Name)).ToList();
        var chosen = matched.Where(p => !p.Shared).ToList();
        if (chosen.Count == 0) throw NoMatch(candidates, matched);

        var rng = new Random(_options.Seed);
        var builder = new GraphBuilder(g, model.DefaultOpset);
        _adapters = [.. chosen.Select(p => Adapt(g, builder, p, rng))];
        _skipped = [.. matched.Where(p => p.Shared).Select(p => p.ToCandidate())];
        return new PassResult(model, true);
    }

    /// <inheritdoc/>
    public void CheckPostconditions(Model model)
    {
        var g = model.Graph;
        foreach (var a in _adapters)
        {
            string at = $"{Name}: adapter of '{a.NodeName}'";
            if (g.FindInitializer(a.AName) is not { } av || !av.Initializer!.Dims.SequenceEqual([a.Rank, (long)a.In]))
                throw new OnnxFormatException($"{at}: initializer '{a.AName}' [{a.Rank}, {a.In}] is missing after the pass.");
            if (g.FindInitializer(a.BName) is not { } bv || !bv.Initializer!.Dims.SequenceEqual([a.Out, (long)a.Rank]))
                throw new OnnxFormatException($"{at}: initializer '{a.BName}' [{a.Out}, {a.Rank}] is missing after the pass.");
            var mm = g.FindValue(a.OutputName)?.Producer is { OpType: "Add", Domain: "" } add ? add.Input(0)?.Producer : null;
            if (mm is not { OpType: "MatMul", Domain: "" } || LabelOf(mm, a.OutputName) != a.NodeName || Inspect(mm)?.Weight.Name != a.WeightName)
                throw new OnnxFormatException($"{at}: the original MatMul reading '{a.WeightName}' is no longer in the graph after the pass.");
        }
    }

    private LoraAdapter Adapt(Graph g, GraphBuilder b, Projection p, Random rng)
    {
        int r = _options.Rank;
        var y = p.MatMul.Outputs[0];
        var x = p.MatMul.Input(0)!;
        string outputName = y.Name;

        double bound = 1.0 / Math.Sqrt(p.In);
        var aValues = new float[(long)r * p.In];
        for (long i = 0; i < aValues.LongLength; i++) aValues[i] = (float)((rng.NextDouble() * 2 - 1) * bound);
        var a = g.AddInitializer(TensorData.Create<float>(FreeName(g, p.Weight.Name + ".lora_A"), [r, p.In], aValues));
        var bInit = g.AddInitializer(TensorData.Create<float>(FreeName(g, p.Weight.Name + ".lora_B"), [p.Out, r], new float[(long)p.Out * r]));

        Value adapted;
        using (b.Scope(p.Label.TrimStart('/')))
        using (b.Scope("lora"))
        {
            var h = b.MatMul(x, b.Transpose(a, 1, 0));                              // (.., r)
            var d = b.MatMul(h, b.Transpose(bInit, 1, 0));                          // (.., out)
            var scaled = b.Mul(d, b.Scalar((float)_options.Scale));
            adapted = b.Add(y, scaled);
        }
        // Every reader of y (graph outputs included) now reads y'; the new Add keeps reading y itself.
        g.ReplaceAllUses(y, adapted);
        adapted.Producer!.SetInput(0, y);
        adapted.ElementType = y.ElementType == ElementType.Undefined ? ElementType.Float : y.ElementType;
        adapted.Shape = y.Shape;
        adapted.DocString = y.DocString;
        // y' takes y's name, so readers, graph outputs and value names downstream look as they did.
        g.RenameValue(y, FreeName(g, outputName + "_base"));
        g.RenameValue(adapted, outputName);
        return new LoraAdapter(p.Label, p.Weight.Name, a.Name, bInit.Name, p.In, p.Out, p.Transpose is not null, r, _options.Alpha, outputName);
    }

    private OnnxFormatException NoMatch(List<Projection> candidates, List<Projection> matched)
    {
        const int limit = 40;
        static string List(IEnumerable<Projection> ps, int count) =>
            string.Join(", ", ps.Take(limit).Select(p => $"'{p.Label}' (weight '{p.Weight.Name}')")) + (count > limit ? $", and {count - limit} more" : "");
        if (candidates.Count == 0)
            return new OnnxFormatException($"{Name}: the main graph has no projection LoRA can adapt (a MatMul whose second input is a 2-D float " +
                $"initializer, or a Transpose [1, 0] of one); the pattern was '{_options.Pattern}'.");
        if (matched.Count > 0)
            return new OnnxFormatException($"{Name}: the pattern '{_options.Pattern}' matches only projections whose weights are shared with other " +
                $"nodes, which LoRA does not adapt: {List(matched, matched.Count)}.");
        return new OnnxFormatException($"{Name}: the pattern '{_options.Pattern}' matches none of the {candidates.Count} candidate projections " +
            $"(MatMul node name or weight name): {List(candidates, candidates.Count)}.");
    }

    internal static bool IsLoraName(string name) =>
        name.EndsWith(".lora_A", StringComparison.Ordinal) || name.EndsWith(".lora_B", StringComparison.Ordinal);

    /// <summary><paramref name="hint"/> when no value has that name, else <c>hint_1</c>, <c>hint_2</c>, ... (not claimed).</summary>
    internal static string FreeName(Graph g, string hint)
    {
        if (!g.Names.IsValueNameTaken(hint)) return hint;
        for (int i = 1; ; i++)
        {
            var name = $"{hint}_{i}";
            if (!g.Names.IsValueNameTaken(name)) return name;
        }
    }

    internal static string LabelOf(Node n, string outputName) => n.Name.Length > 0 ? n.Name : outputName;

    /// <summary>A MatMul of the main graph whose weight LoRA can adapt.</summary>
    internal sealed record Projection(Node MatMul, Value Weight, Node? Transpose, int In, int Out, bool Shared)
    {
        public string Label => LabelOf(MatMul, MatMul.Outputs[0].Name);

        public LoraCandidate ToCandidate() => new(Label, Weight.Name, In, Out, Transpose is not null, Shared);
    }

    /// <summary>The projection a node is, or null when it is not a MatMul reading a 2-D float initializer (or its transpose).</summary>
    internal static Projection? Inspect(Node n)
    {
        if (n is not { OpType: "MatMul", Domain: "" } || n.Input(0) is null || n.Input(1) is not { } w || n.Outputs.Count != 1) return null;
        if (IsFloatMatrix(w, n.Graph))
        {
            var dims = w.Initializer!.Dims;
            return new Projection(n, w, null, (int)dims[0], (int)dims[1], w.Uses.Count != 1 || w.IsGraphOutput);
        }
        if (w.Producer is { OpType: "Transpose", Domain: "" } t && t.Input(0) is { } stored && IsFloatMatrix(stored, n.Graph)
            && t.GetInts("perm") is null or [1, 0])
        {
            var dims = stored.Initializer!.Dims;
            bool shared = stored.Uses.Count != 1 || stored.IsGraphOutput || w.Uses.Count != 1 || w.IsGraphOutput;
            return new Projection(n, stored, t, (int)dims[1], (int)dims[0], shared);
        }
        return null;
    }

    private static bool IsFloatMatrix(Value v, Graph graph) =>
        v.Graph == graph && !IsLoraName(v.Name) && v.Initializer is { ElementType: ElementType.Float, Dims: [> 0 and <= int.MaxValue, > 0 and <= int.MaxValue] }
        && !v.IsGraphInput;
}

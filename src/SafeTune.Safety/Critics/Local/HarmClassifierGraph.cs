using SafeTune.Onnx;

namespace SafeTune.Safety.Critics.Local;

/// <summary>
/// Turns a BERT-style encoder graph (such as all-MiniLM-L6-v2: inputs <c>input_ids</c>, <c>attention_mask</c>,
/// <c>token_type_ids</c>, output <c>last_hidden_state</c> [batch, sequence, width]) into a two-class harm classifier:
/// a masked mean over the tokens, then a linear head, with the single output <see cref="LogitsName"/> [batch, 1, 2]
/// (class <see cref="HarmfulClass"/> = harmful). The shape is the one a token cross-entropy with one label per row
/// ([batch, 1]) trains unchanged.
/// </summary>
/// <remarks>
/// The encoder's projection weights, which PyTorch's exporter leaves with numeric names, are renamed after the bias added
/// to their output (<c>927</c> becomes <c>encoder.layer.0.attention.self.query.weight</c>, stored [in, out] as the
/// MatMul reads it), so LoRA patterns can pick layers by name. The encoder's other outputs (the pooler) and the nodes
/// only they need are removed.
/// </remarks>
public static class HarmClassifierGraph
{
    /// <summary>The classifier's output: float [batch, 1, 2] logits (not harmful, harmful).</summary>
    public const string LogitsName = "logits";

    /// <summary>The head's weight, float [width, 2], read by a MatMul as [in, out].</summary>
    public const string HeadWeight = "classifier.weight";

    /// <summary>The head's bias, float [2].</summary>
    public const string HeadBias = "classifier.bias";

    /// <summary>The number of classes.</summary>
    public const int Classes = 2;

    /// <summary>The class index of "harmful".</summary>
    public const int HarmfulClass = 1;

    /// <summary>The encoder inputs the classifier keeps, in order.</summary>
    public static IReadOnlyList<string> Inputs { get; } = ["input_ids", "attention_mask", "token_type_ids"];

    /// <summary>
    /// Builds the classifier on <paramref name="encoder"/> (changed in place and returned) with a head drawn from
    /// N(0, 0.02²) (BERT's initialization) by a generator seeded with <paramref name="seed"/>, and a zero bias.
    /// </summary>
    public static Model Build(Model encoder, int seed)
    {
        int width = Width(encoder);
        var rng = new Random(seed);
        var w = new float[width * Classes];
        for (int i = 0; i < w.Length; i++) w[i] = (float)(0.02 * Gaussian(rng));
        return Build(encoder, w, new float[Classes]);
    }

    /// <summary>
    /// Builds the classifier on <paramref name="encoder"/> (changed in place and returned) with the given head:
    /// <paramref name="weight"/> row-major [width, 2] and <paramref name="bias"/> [2].
    /// </summary>
    /// <exception cref="InvalidDataException">The encoder lacks an input, <c>last_hidden_state</c> or its token embedding table.</exception>
    public static Model Build(Model encoder, float[] weight, float[] bias)
    {
        ArgumentNullException.ThrowIfNull(encoder);
        ArgumentNullException.ThrowIfNull(weight);
        ArgumentNullException.ThrowIfNull(bias);
        var g = encoder.Graph;
        foreach (var name in Inputs)
            if (!g.Inputs.Any(i => i.Name == name))
                throw new InvalidDataException($"the encoder has no input '{name}' (inputs: {string.Join(", ", g.Inputs.Select(i => i.Name))}).");
        var hidden = g.Outputs.FirstOrDefault(o => o.Name == "last_hidden_state")
            ?? throw new InvalidDataException($"the encoder has no output 'last_hidden_state' (outputs: {string.Join(", ", g.Outputs.Select(o => o.Name))}).");
        if (g.FindValue(LogitsName) is not null || g.FindValue(HeadWeight) is not null)
            throw new InvalidDataException($"the encoder already has a value named '{LogitsName}' or '{HeadWeight}'; is it a classifier already?");
        int width = Width(encoder);
        if (weight.Length != width * Classes) throw new UserInputException($"the head weight has {weight.Length} values; expected [{width}, {Classes}].");
        if (bias.Length != Classes) throw new UserInputException($"the head bias has {bias.Length} values; expected {Classes}.");

        NameProjections(encoder);
        var b = new GraphBuilder(g, encoder.DefaultOpset);
        Value logits;
        using (b.Scope("classifier"))
        {
            Value pooled;
            using (b.Scope("pool"))
            {
                var mask = b.Unsqueeze(b.Cast(g.GetValue("attention_mask"), ElementType.Float), 2);     // (B, T, 1)
                var sum = b.ReduceSum(b.Mul(hidden, mask), [1], keepDims: false);                        // (B, H)
                var count = b.Op("Max", b.ReduceSum(mask, [1], keepDims: false), b.Scalar(1e-9f));     // (B, 1)
                pooled = b.Div(sum, count);                                                              // (B, H)
            }
            using (b.Scope("head"))
            {
                var w = b.Parameter(HeadWeight, weight, width, Classes);
                var bv = b.Parameter(HeadBias, bias, Classes);
                logits = b.Unsqueeze(b.Add(b.MatMul(pooled, w), bv), 1);                                  // (B, 1, 2)
            }
        }
        foreach (var o in g.Outputs.ToList()) g.RemoveOutput(o);
        b.Output(logits, LogitsName);
        logits.ElementType = ElementType.Float;
        logits.Shape = new Shape([Dim.Symbol("batch"), Dim.Of(1), Dim.Of(Classes)]);
        RemoveUnused(g);
        return encoder;
    }

    /// <summary>
    /// Renames every projection weight whose MatMul output is added to a bias initializer named <c>X.bias</c> to
    /// <c>X.weight</c> (when that name is free). Returns the number renamed.
    /// </summary>
    public static int NameProjections(Model model)
    {
        ArgumentNullException.ThrowIfNull(model);
        var g = model.Graph;
        int renamed = 0;
        foreach (var n in g.Nodes.Where(n => n is { OpType: "MatMul", Domain: "" }).ToList())
        {
            if (n.Input(1) is not { IsInitializer: true } w || w.Uses.Count != 1 || n.Outputs[0].Uses is not [var use]) continue;
            if (use.Node is not { OpType: "Add", Domain: "" } add) continue;
            var biasValue = add.Inputs.FirstOrDefault(v => v is { IsInitializer: true } && v.Name.EndsWith(".bias", StringComparison.Ordinal));
            if (biasValue is null) continue;
            var name = biasValue.Name[..^".bias".Length] + ".weight";
            if (w.Name == name || g.Names.IsValueNameTaken(name)) continue;
            g.RenameValue(w, name);
            renamed++;
        }
        return renamed;
    }

    /// <summary>The encoder's hidden width: the columns of the embedding table that <c>input_ids</c> index.</summary>
    public static int Width(Model encoder)
    {
        ArgumentNullException.ThrowIfNull(encoder);
        var ids = encoder.Graph.Inputs.FirstOrDefault(i => i.Name == "input_ids")
            ?? throw new InvalidDataException("the encoder has no input 'input_ids'.");
        var table = ids.Uses.Select(u => u.Node).FirstOrDefault(n => n is { OpType: "Gather", Domain: "" } && n.Input(0)?.Initializer is { Dims.Length: 2 })
            ?? throw new InvalidDataException("the encoder has no token embedding table (a Gather of a 2-D initializer reading 'input_ids').");
        return checked((int)table.Input(0)!.Initializer!.Dims[1]);
    }

    /// <summary>Removes nodes no graph output needs, then initializers nothing reads.</summary>
    private static void RemoveUnused(Graph g)
    {
        var needed = new HashSet<Node>(ReferenceEqualityComparer.Instance);
        var stack = new Stack<Value>(g.Outputs);
        while (stack.Count > 0)
        {
            var v = stack.Pop();
            if (v.Producer is { } p && needed.Add(p))
                foreach (var input in Graph.NodeReads(p)) stack.Push(input);
        }
        // Consumers first, so every removed node's outputs are already unused.
        foreach (var n in g.TopologicalOrder().Reverse().Where(n => !needed.Contains(n)).ToList()) g.RemoveNode(n);
        foreach (var init in g.Initializers.Where(v => v.Uses.Count == 0 && !v.IsGraphOutput).ToList()) g.RemoveInitializer(init);
    }

    private static double Gaussian(Random rng)
    {
        double u1 = 1.0 - rng.NextDouble(), u2 = rng.NextDouble();
        return Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
    }
}

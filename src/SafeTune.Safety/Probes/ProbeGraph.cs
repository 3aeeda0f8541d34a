using SafeTune.Onnx;
using SafeTune.Onnx.Passes;
using SafeTune.Safety.Activations;

namespace SafeTune.Safety.Probes;

/// <summary>What <see cref="ProbeGraph.Append"/> added to a model.</summary>
/// <param name="PromptMaskInput">The name of the prompt-mask input (<c>[batch, sequence]</c>; 1 on prompt tokens, 0 elsewhere).</param>
/// <param name="PromptMaskAdded">True when the input was added; false when an existing input of that name was reused.</param>
/// <param name="Output">The name of the risk output, float <c>[batch]</c>.</param>
/// <param name="HiddenStates">The hidden-state tensors the probe reads, in layer order.</param>
/// <param name="Layers">The layers averaged (indices into the model's blocks).</param>
public sealed record ProbeGraphResult(string PromptMaskInput, bool PromptMaskAdded, string Output, IReadOnlyList<string> HiddenStates, IReadOnlyList<int> Layers);

/// <summary>
/// Appends a probe to a model's own graph, so one forward pass returns the harm probability beside the model's outputs:
/// no second pass and no hidden states copied out.
/// <para>
/// The subgraph reads the per-block hidden states (<see cref="HiddenStateLocator"/>), pools them with the prompt mask
/// (mean over masked tokens, the last masked token, or the attention-weighted sum with the probe's query and a softmax over
/// the masked tokens; then the mean or concatenation of the probe's layers), and applies the probe's
/// standardisation and head with the standardisation folded into the first layer (<see cref="ProbeScorer"/>). It uses
/// only standard <c>ai.onnx</c> operators valid from opset 13 (Cast, ReduceSum, Div, CumSum, Equal, Mul, Unsqueeze,
/// Shape, Concat, Reshape, MatMul, Add, Squeeze, Relu, Sigmoid; Sub and Softmax for attention-weighted pooling), and
/// leaves every existing node, input and output as it was.
/// </para>
/// <para>
/// The prompt mask marks the tokens the probe was trained on: for a chat model, the tokens of the prompt rendered with the
/// probe's chat template (<c>ChatTemplate.Tokenize(...).PromptLength</c>); 1 on those, 0 on response tokens and padding.
/// In a causal decoder the response tokens after the prompt cannot change the prompt's hidden states, so the risk equals
/// the probe's score of the prompt alone. In a bidirectional encoder (BERT, MiniLM) every attended token changes every
/// hidden state: there, tokens outside the prompt must also be masked out of the model's own <c>attention_mask</c>.
/// Every row needs at least one prompt token (an empty mask gives NaN).
/// </para>
/// </summary>
public static class ProbeGraph
{
    /// <summary>The default name of the prompt-mask input.</summary>
    public const string DefaultPromptMaskInput = "prompt_mask";

    /// <summary>The default name of the risk output.</summary>
    public const string DefaultOutput = "probe_risk";

    /// <summary>
    /// Appends <paramref name="probe"/> to <paramref name="model"/> in place. A new int64 input
    /// <paramref name="promptMaskInput"/> <c>[batch, sequence]</c> is added (with the dims of the model's token-id
    /// input), unless the graph already has an input of that name (int64, int32, bool or float, <c>[batch, sequence]</c>),
    /// which is then reused. The output <paramref name="output"/> is float <c>[batch]</c>.
    /// The caller checks that the model is the one the probe was trained on (<see cref="ProbeFile.CheckModel"/> on its file).
    /// </summary>
    /// <exception cref="OnnxFormatException">The opset is below 13, no blocks are found, the layer count or width differs
    /// from the probe's, or the output name is taken.</exception>
    public static ProbeGraphResult Append(Model model, ProbeFile probe, string promptMaskInput = DefaultPromptMaskInput, string output = DefaultOutput)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(probe);
        ArgumentException.ThrowIfNullOrWhiteSpace(promptMaskInput);
        ArgumentException.ThrowIfNullOrWhiteSpace(output);
        var g = model.Graph;
        long opset = model.DefaultOpset;
        if (opset < 13) throw new OnnxFormatException($"graph '{g.Name}': the probe subgraph needs opset 13 or newer; the model has opset {opset}.");
        if (g.FindValue(output) is not null) throw new OnnxFormatException($"graph '{g.Name}' already has a value named '{output}'; choose another output name.");

        // Locating runs shape inference, which may refine the declared outputs; keep them exactly as they were.
        var declared = g.Outputs.Select(o => (o, o.ElementType, o.Shape)).ToList();
        var located = HiddenStateLocator.Locate(model);
        foreach (var (o, type, shape) in declared) { o.ElementType = type; o.Shape = shape; }
        if (located.Count == 0) throw new OnnxFormatException($"no transformer blocks were recognised in graph '{g.Name}'.");
        if (probe.LayerCount is { } count && count != located.Count)
            throw new OnnxFormatException($"graph '{g.Name}' has {located.Count} transformer blocks; the probe was trained on a model with {count}.");
        int[] layers = probe.Layers is null ? [.. Enumerable.Range(0, located.Count)] : [.. probe.Layers.Distinct().Order()];
        if (layers.Length == 0 || layers.Any(l => l < 0 || l >= located.Count))
            throw new OnnxFormatException($"the probe reads layers {string.Join(", ", layers)}; graph '{g.Name}' has layers 0 to {located.Count - 1}.");
        bool attention = probe.Pooling == ActivationPooling.AttentionWeighted;
        bool concat = probe.Pooling == ActivationPooling.MeanTokensConcatLayers || attention;
        if (attention && probe.AttentionQuery?.Count != probe.Head.Dimension)
            throw new OnnxFormatException($"the probe pools with attention weights but has {probe.AttentionQuery?.Count ?? 0} query values for its {probe.Head.Dimension} features.");
        int features = probe.Head.Dimension;
        if (concat && features % layers.Length != 0)
            throw new OnnxFormatException($"the probe reads {features} features, not a multiple of its {layers.Length} concatenated layers.");
        int width = concat ? features / layers.Length : features;  // per layer
        foreach (var l in layers)
            if (located[l].Shape is { Rank: >= 2 } s && s[-1].Value is long w && w != width)
                throw new OnnxFormatException($"hidden state '{located[l].Tensor.Name}' has width {w}; the probe reads {width} features per layer.");

        var b = new GraphBuilder(g, opset);
        bool added = false;
        Value mask;
        if (g.Inputs.FirstOrDefault(v => v.Name == promptMaskInput) is { } existing)
        {
            if (existing.IsInitializer || !(existing.ElementType.IsInteger() || existing.ElementType is ElementType.Bool or ElementType.Float))
                throw new OnnxFormatException($"input '{promptMaskInput}' ({existing.TypeString}) cannot serve as the prompt mask.");
            mask = existing;
        }
        else
        {
            if (g.FindValue(promptMaskInput) is not null) throw new OnnxFormatException($"graph '{g.Name}' already has a value named '{promptMaskInput}' that is not an input.");
            var ids = g.Inputs.FirstOrDefault(v => v.Name == "input_ids") ?? g.Inputs.FirstOrDefault(v => !v.IsInitializer && v.ElementType.IsInteger());
            Dim[] dims = ids?.Shape is { Rank: 2 } idShape ? [idShape[0], idShape[1]] : [Dim.Symbol("batch"), Dim.Symbol("sequence")];
            mask = b.Input(promptMaskInput, ElementType.Int64, dims);
            added = true;
        }

        Value risk;
        using (b.Scope("probe"))
        {
            // (B, T) pooling weights: 1/n on the n prompt tokens, or 1 on the last one.
            Value m = mask.ElementType == ElementType.Float ? mask : b.Cast(mask, ElementType.Float);
            Value total = b.ReduceSum(m, [1], keepDims: true);                                     // (B, 1)
            Value weights = probe.Pooling == ActivationPooling.LastToken
                ? b.Mul(m, b.Cast(b.Equal(b.Op("CumSum", m, b.ScalarInt(1)), total), ElementType.Float))
                : b.Div(m, total);
            Value rows = b.Concat(0, b.ShapeOf(mask), b.Ints(width));                              // [B, T, width]
            var states = new List<Value>(layers.Length);
            foreach (var l in layers)
            {
                Value h = located[l].Tensor;
                if (h.ElementType != ElementType.Float) h = b.Cast(h, ElementType.Float);
                states.Add(b.Reshape(h, rows));                                                      // (B, T, width)
            }
            if (attention)
            {
                // Each token's layers side by side, scored by the query; the softmax runs over the prompt's tokens only
                // (a token outside the mask gets -1e9 added to its score, so its weight is 0).
                Value tokens = states.Count == 1 ? states[0] : b.Concat(2, [.. states]);            // (B, T, features)
                var q = Param(g, "probe.attention.query", [.. probe.AttentionQuery!], features, 1);
                Value scores = b.Squeeze(b.MatMul(tokens, q), 2);                                     // (B, T)
                scores = b.Add(scores, b.Mul(b.Sub(m, b.Scalar(1f)), b.Scalar(1e9f)));
                weights = b.Softmax(scores, 1);
                states = [tokens];
            }
            Value w3 = b.Unsqueeze(weights, 1);                                                    // (B, 1, T)
            var perLayer = states.Select(h => b.MatMul(w3, h)).ToList();                            // (B, 1, width or features)
            Value pooled;
            if (concat) pooled = perLayer.Count == 1 ? perLayer[0] : b.Concat(2, [.. perLayer]);   // (B, 1, layers * width)
            else
            {
                pooled = perLayer.Aggregate((sum, next) => b.Add(sum, next));
                if (layers.Length > 1) pooled = b.Mul(pooled, b.Scalar(1f / layers.Length));       // (B, 1, width)
            }
            Value x = b.Squeeze(pooled, 1);                                                         // (B, features)

            var folded = ProbeScorer.Create(probe.Head);
            Value logit;
            if (probe.Head.Kind == ProbeHeadKind.Logistic)
            {
                var wt = Param(g, "probe.head.weight", folded.FoldedWeights.ToArray(), features, 1);
                logit = b.Add(b.MatMul(x, wt), Param(g, "probe.head.bias", folded.FoldedBias.ToArray(), 1)); // (B, 1)
            }
            else
            {
                int hidden = folded.FoldedBias.Length;
                var w1 = folded.FoldedWeights;
                var w1t = new float[features * hidden];
                for (int k = 0; k < hidden; k++)
                    for (int j = 0; j < features; j++) w1t[j * hidden + k] = w1[k * features + j];
                Value a = b.Relu(b.Add(b.MatMul(x, Param(g, "probe.head.fc1.weight", w1t, features, hidden)),
                    Param(g, "probe.head.fc1.bias", folded.FoldedBias.ToArray(), hidden)));              // (B, hidden)
                logit = b.Add(b.MatMul(a, Param(g, "probe.head.fc2.weight", folded.OutputWeights.ToArray(), hidden, 1)),
                    Param(g, "probe.head.fc2.bias", [folded.OutputBias], 1));                             // (B, 1)
            }
            risk = b.Squeeze(b.Sigmoid(logit), 1);                                                  // (B)
        }
        b.Output(risk, output);
        risk.ElementType = ElementType.Float;
        risk.Shape = new Shape([mask.Shape is { Rank: >= 1 } ms ? ms[0] : Dim.Symbol("batch")]);
        return new ProbeGraphResult(promptMaskInput, added, output, [.. layers.Select(l => located[l].Tensor.Name)], layers);
    }

    /// <summary>
    /// Loads the model file the probe was trained on, after checking its SHA-256 against the probe
    /// (<see cref="ProbeFile.CheckModel"/>), and appends the probe (<see cref="Append"/>).
    /// </summary>
    /// <exception cref="InvalidDataException">The file's hash differs from the probe's.</exception>
    public static (Model Model, ProbeGraphResult Result) LoadAndAppend(string modelPath, ProbeFile probe, string promptMaskInput = DefaultPromptMaskInput,
        string output = DefaultOutput)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(modelPath);
        ArgumentNullException.ThrowIfNull(probe);
        probe.CheckModel(modelPath);
        var model = Models.Generation.DecoderFolder.LoadModel(modelPath);
        return (model, Append(model, probe, promptMaskInput, output));
    }

    /// <summary>A float initializer under <paramref name="name"/>, or <c>name_1</c>, <c>name_2</c>... when the name is taken.</summary>
    private static Value Param(Graph g, string name, float[] values, params long[] dims) =>
        g.AddInitializerUnique(name, TensorData.Create<float>(name, dims, values));
}

using SafeTune.Onnx;

namespace SafeTune.Autodiff.Losses;

/// <summary>
/// One kind of response-token loss (see <see cref="ResponseLosses"/>): the per-step inputs it declares, the graph it
/// appends from exactly those inputs, and the per-token feeds it makes for them. A new loss is one subclass, a member
/// of <see cref="ResponseLossKind"/> and its line in <see cref="Of"/>.
/// </summary>
public abstract class ResponseLoss
{
    private protected ResponseLoss() { }

    /// <summary>Cross-entropy on the response tokens (<see cref="ResponseLossKind.CrossEntropy"/>).</summary>
    public static ResponseLoss CrossEntropy { get; } = new CrossEntropyResponseLoss();

    /// <summary>Cross-entropy and the KL to the reference (<see cref="ResponseLossKind.CrossEntropyAndKl"/>).</summary>
    public static ResponseLoss CrossEntropyAndKl { get; } = new KlResponseLoss();

    /// <summary>Constrained SFT (<see cref="ResponseLossKind.Constrained"/>).</summary>
    public static ResponseLoss Constrained { get; } = new ConstrainedResponseLoss();

    /// <summary>The loss of <paramref name="kind"/>.</summary>
    public static ResponseLoss Of(ResponseLossKind kind) => kind switch
    {
        ResponseLossKind.CrossEntropy => CrossEntropy,
        ResponseLossKind.CrossEntropyAndKl => CrossEntropyAndKl,
        ResponseLossKind.Constrained => Constrained,
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };

    /// <summary>Which loss this is.</summary>
    public abstract ResponseLossKind Kind { get; }

    /// <summary>
    /// The per-step inputs besides the model's own and <c>labels</c>, in the order the graph adds them: those
    /// <see cref="Feeds"/> makes, and the reference pass's outputs the loss reads. <paramref name="fusedHead"/>: the head
    /// and the loss are one <see cref="FusedResponseHead"/> node.
    /// </summary>
    public abstract IReadOnlyList<string> Inputs(bool fusedHead);

    /// <summary>The per-token inputs of one micro-batch that the loss makes (every declared input but the reference's).</summary>
    public abstract ResponseFeeds Feeds(ResponseFeedSource source);

    /// <summary>True when the head and the loss can be one <see cref="FusedResponseHead"/> node.</summary>
    private protected virtual bool CanFuseHead => false;

    /// <summary>The loss and the per-token values whose means are logged, from the response rows' log-probabilities.</summary>
    private protected abstract (Value Loss, IReadOnlyList<(Value PerToken, string Name)> Metrics) Terms(ResponseTerms t);

    /// <summary>The fused head node over the response rows, and the per-token values (its outputs) whose means are logged.</summary>
    private protected virtual (Node Head, IReadOnlyList<(Value PerToken, string Name)> Metrics) FusedTerms(GraphBuilder b, ResponseLosses.Head head,
        Value rows, Value targets, IReadOnlyDictionary<string, Value> inputs) =>
        throw new NotSupportedException($"the {Kind} loss has no fused head.");

    /// <summary>
    /// Appends the loss to a model whose response logits were gathered with <see cref="ResponseLosses.GatherResponseLogits"/>
    /// (called here when the graph has no <see cref="ResponseNames.Logits"/> yet). Adds the inputs <c>labels</c> [B, T]
    /// and <see cref="Inputs"/>; the loss output is <see cref="LossNames.Total"/>.
    /// <para>
    /// With <paramref name="fuseHead"/>, when the logits are a MatMul of the final hidden states by a weight that the
    /// caller knows is frozen, and the loss can fuse its head, the head and the loss become one
    /// <see cref="FusedResponseHead"/> node: no [N, V] tensor is built, and a KL term reads the reference's hidden rows
    /// (<see cref="ResponseNames.ReferenceHidden"/>, from <see cref="ResponseLosses.AppendReferenceHidden"/>) instead of
    /// its log-probabilities.
    /// </para>
    /// </summary>
    public ResponseLossGraph Append(Model model, string logits = "logits", bool fuseHead = false)
    {
        ArgumentNullException.ThrowIfNull(model);
        var g = model.Graph;
        if (fuseHead && CanFuseHead && g.FindValue(ResponseNames.Logits) is null && ResponseLosses.FindHead(model, logits) is { } head)
            return AppendFused(model, logits, head);
        var z = g.FindValue(ResponseNames.Logits) ?? ResponseLosses.GatherResponseLogits(model, logits);
        var b = new GraphBuilder(g, model.DefaultOpset);
        using var _ = b.Scope("loss/response");
        var type = z.ElementType == ElementType.Undefined ? ElementType.Float : z.ElementType;
        if (type != ElementType.Float) z = b.Cast(z, ElementType.Float);
        var labels = LossGraphs.LabelsInput(model);
        var declared = Inputs(fusedHead: false);
        var inputs = Declare(b, declared, vocab: z.Shape?[-1] ?? Dim.Unknown, width: Dim.Unknown);
        var index = inputs[ResponseNames.Index];

        var logProbs = b.LogSoftmax(z, -1);                                                               // (N, V)
        var targets = b.Gather(b.Reshape(labels, -1), index, 0);                                         // (N)
        var picked = b.Squeeze(b.Op("GatherElements", [logProbs, b.Unsqueeze(targets, 1)], Onnx.Attribute.Of("axis", 1L)), 1); // (N)
        var count = Count(b, index);
        var ce = b.Neg(picked);                                                                          // (N)
        var (loss, metrics) = Terms(new ResponseTerms(b, inputs, logProbs, picked, ce));
        var outputs = metrics.Select(m => b.Output(Mean(b, m.PerToken, count), m.Name).Name).ToList();
        if (g.FindValue(ResponseNames.Logits) is { IsGraphOutput: true } rl) g.RemoveOutput(rl);
        var total = b.Output(b.Identity(loss), LossNames.Total);
        return new ResponseLossGraph(total, outputs, declared);
    }

    private ResponseLossGraph AppendFused(Model model, string logits, ResponseLosses.Head head)
    {
        var g = model.Graph;
        var b = new GraphBuilder(g, model.DefaultOpset);
        using var _ = b.Scope("loss/response");
        var index = ResponseLosses.IndexInput(b);
        var labels = LossGraphs.LabelsInput(model);
        var declared = Inputs(fusedHead: true);
        var inputs = Declare(b, declared, vocab: Dim.Unknown, width: head.Hidden.Shape is { Rank: > 0 } hs ? hs[-1] : Dim.Unknown);
        var rows = ResponseLosses.HiddenRows(b, head.Hidden, index);                                     // (N, d)
        var targets = b.Gather(b.Reshape(labels, -1), index, 0);                                        // (N)
        var (node, metrics) = FusedTerms(b, head, rows, targets, inputs);
        var count = Count(b, index);
        var outputs = metrics.Select(m => b.Output(Mean(b, m.PerToken, count), m.Name).Name).ToList();
        if (g.FindValue(logits) is { IsGraphOutput: true } z) g.RemoveOutput(z);
        var total = b.Output(b.Identity(node.Outputs[FusedResponseHead.LossOutput]), LossNames.Total);
        g.RemoveUnusedNodes();
        return new ResponseLossGraph(total, outputs, declared);
    }

    /// <summary>The graph's values of the declared inputs, each added when the graph lacks it (every one is [N] or [N, x]).</summary>
    private static Dictionary<string, Value> Declare(GraphBuilder b, IReadOnlyList<string> names, Dim vocab, Dim width)
    {
        var inputs = new Dictionary<string, Value>(StringComparer.Ordinal);
        foreach (var name in names)
            inputs[name] = b.Graph.FindValue(name) ?? name switch
            {
                ResponseNames.Index => b.Input(name, ElementType.Int64, Dim.Symbol("response_tokens")),
                ResponseNames.ReferenceLogProbs => b.Input(name, ElementType.Float, Dim.Symbol("response_tokens"), vocab),
                ResponseNames.ReferenceHidden => b.Input(name, ElementType.Float, Dim.Symbol("response_tokens"), width),
                _ => b.Input(name, ElementType.Float, Dim.Symbol("response_tokens")),
            };
        return inputs;
    }

    /// <summary>max(N, 1) as a float scalar.</summary>
    private static Value Count(GraphBuilder b, Value index) =>
        b.Op("Max", b.Cast(b.Reshape(b.ShapeOf(index), []), ElementType.Float), b.Scalar(1f));

    private static Value Mean(GraphBuilder b, Value perToken, Value count) => b.Div(b.ReduceSum(perToken, [0], keepDims: false), count);

    /// <summary>Each response token's value of <paramref name="perPosition"/> (by position in <see cref="ResponseFeedSource.Index"/>).</summary>
    private protected static float[] PerToken(ResponseFeedSource source, Func<int, float> perPosition)
    {
        var values = new float[source.Index.Length];
        for (int i = 0; i < values.Length; i++) values[i] = perPosition(i);
        return values;
    }

    /// <summary>What a loss's terms are built from: the builder, the declared inputs and the response rows' values.</summary>
    private protected sealed record ResponseTerms(GraphBuilder B, IReadOnlyDictionary<string, Value> Inputs, Value LogProbs, Value Picked, Value CrossEntropy)
    {
        /// <summary><c>sum_n perToken[n] * weight[n]</c> with the declared input <paramref name="weight"/>.</summary>
        public Value WeightedSum(Value perToken, string weight) => B.ReduceSum(B.Mul(perToken, Inputs[weight]), [0], keepDims: false);
    }
}

/// <summary>What a response loss makes its per-token feeds from, for one micro-batch.</summary>
/// <param name="Index">The flat indices <c>b * T + t</c> of the response positions (<see cref="ResponseLosses.Index"/>), in order.</param>
/// <param name="Weights">Each response token's weights, by its position in <paramref name="Index"/>.</param>
/// <param name="TokenBeta">Each response token's beta_t of the constrained loss, by its position in <paramref name="Index"/>; null when the loss has none.</param>
public sealed record ResponseFeedSource(long[] Index, TokenWeights Weights, Func<int, double>? TokenBeta = null);

/// <summary>The per-token inputs a response loss made for one micro-batch, every one with one value per response token.</summary>
/// <param name="Index">The <see cref="ResponseNames.Index"/> input.</param>
/// <param name="Floats">The float inputs by name.</param>
public sealed record ResponseFeeds(long[] Index, IReadOnlyDictionary<string, float[]> Floats);

/// <summary>
/// The per-token weights of a step's loss, each token's share of a mean over the step's N response tokens:
/// <c>(1 - beta) / N</c> of its cross-entropy, <c>beta / N</c> of its KL, <c>1 / N</c> of a term without beta.
/// </summary>
public abstract class TokenWeights
{
    private protected TokenWeights() { }

    /// <summary>
    /// A beta per response token, in a step of <paramref name="stepTokens"/> response tokens over all its micro-batches;
    /// in float, <c>(float)(1 - beta) * (1f / N)</c>.
    /// </summary>
    public static TokenWeights PerToken(Func<int, double> beta, long stepTokens)
    {
        ArgumentNullException.ThrowIfNull(beta);
        return new Scaled(beta, 1f / stepTokens);
    }

    /// <summary>One beta for the <paramref name="count"/> response tokens of a single batch; in float, <c>(1 - beta) / count</c>.</summary>
    public static TokenWeights Fixed(float beta, int count) => new Divided(beta, count);

    /// <summary>The weight of the cross-entropy of the token at <paramref name="position"/>.</summary>
    public abstract float CrossEntropy(int position);

    /// <summary>The weight of the KL of the token at <paramref name="position"/>.</summary>
    public abstract float Kl(int position);

    /// <summary>The weight of a term without beta at <paramref name="position"/>: <c>1 / N</c>.</summary>
    public abstract float Mean(int position);

    private sealed class Scaled(Func<int, double> beta, float inv) : TokenWeights
    {
        public override float CrossEntropy(int position) => (float)(1 - beta(position)) * inv;
        public override float Kl(int position) => (float)beta(position) * inv;
        public override float Mean(int position) => inv;
    }

    private sealed class Divided(float beta, int count) : TokenWeights
    {
        public override float CrossEntropy(int position) => (1 - beta) / count;
        public override float Kl(int position) => beta / count;
        public override float Mean(int position) => 1f / count;
    }
}

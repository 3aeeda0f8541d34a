using SafeTune.Onnx;

namespace SafeTune.Autodiff.Losses;

/// <summary>Names of the inputs and outputs of the response-token loss graphs.</summary>
public static class ResponseNames
{
    /// <summary>Int64 [N]: flat indices <c>b * T + t</c> of the response positions (labels other than -100), in order.</summary>
    public const string Index = "response_index";
    /// <summary>Float [N, V]: the model's logits at the response positions only.</summary>
    public const string Logits = "response_logits";
    /// <summary>Float [N, V]: the frozen reference model's log-probabilities at the response positions.</summary>
    public const string ReferenceLogProbs = "ref_logprobs";
    /// <summary>
    /// Float [N, d]: the frozen reference model's final hidden rows at the response positions (the input of its head),
    /// which the fused head (<see cref="FusedResponseHead"/>) turns into reference log-probabilities chunk by chunk.
    /// </summary>
    public const string ReferenceHidden = "ref_hidden";
    /// <summary>Float [N]: the reference model's log-probability of each response position's label.</summary>
    public const string ReferenceTokenLogProbs = "ref_token_logprobs";
    /// <summary>Float [N]: the weight of each response token's cross-entropy in the loss.</summary>
    public const string SftWeight = "sft_weight";
    /// <summary>Float [N]: the weight of each response token's KL(p_ref || p_theta) in the loss.</summary>
    public const string KlWeight = "kl_weight";
    /// <summary>Float [N]: the weight of each response token's constrained-SFT term in the loss.</summary>
    public const string ConstrainedWeight = "constrained_weight";
    /// <summary>Float [N]: the per-token beta_t of the constrained-SFT objective (positive).</summary>
    public const string TokenBeta = "token_beta";
    /// <summary>Scalar: the mean token cross-entropy over the response tokens (for logging; not differentiated).</summary>
    public const string MeanSft = "mean_sft";
    /// <summary>Scalar: the mean token KL over the response tokens (for logging; not differentiated).</summary>
    public const string MeanKl = "mean_kl";
    /// <summary>Scalar: the mean constrained-SFT term over the response tokens (for logging; not differentiated).</summary>
    public const string MeanConstrained = "mean_constrained";
}

/// <summary>Which terms a response-token loss graph holds; <see cref="ResponseLoss.Of"/> gives each kind's loss.</summary>
public enum ResponseLossKind
{
    /// <summary><c>sum_n w_sft[n] * CE_n</c>: supervised fine-tuning, no reference needed.</summary>
    CrossEntropy,
    /// <summary><c>sum_n (w_sft[n] * CE_n + w_kl[n] * KL_n)</c> with <c>KL_n = KL(p_ref || p_theta)</c> at token n.</summary>
    CrossEntropyAndKl,
    /// <summary>
    /// Constrained SFT (Qi et al., ICLR 2025): <c>sum_n w[n] * (2 / beta_n) * softplus(-beta_n * (log p_theta(y_n) - log p_ref(y_n)))</c>,
    /// i.e. <c>-(2/beta) log sigmoid(beta * log ratio)</c>, which tends to cross-entropy as beta goes to 0 and holds the
    /// token's likelihood near the reference's for large beta.
    /// </summary>
    Constrained,
}

/// <summary>What <see cref="ResponseLoss.Append"/> added: the loss, the logging outputs and the inputs it declared.</summary>
/// <param name="Loss">The scalar to differentiate.</param>
/// <param name="Metrics">Scalar outputs for logging (means over the response tokens), not differentiated.</param>
/// <param name="Inputs">The per-step inputs besides the model's own and <c>labels</c> (<see cref="ResponseLoss.Inputs"/>): every step is fed exactly these.</param>
public sealed record ResponseLossGraph(Value Loss, IReadOnlyList<string> Metrics, IReadOnlyList<string> Inputs);

/// <summary>
/// Losses over the response tokens only. The rows of the response positions are gathered before the language-model
/// head when the head is a MatMul (so the head, the log-softmax and the loss never run on prompt or padding positions),
/// else from the logits. Per-token weights are graph inputs, so a batch-level or per-example beta changes every step
/// without rebuilding the graph: the gradient of <c>sum (w_sft * CE + w_kl * KL)</c> with <c>w_sft = (1 - beta) / N</c>,
/// <c>w_kl = beta / N</c> is exactly <c>(1 - beta) grad SFT + beta grad KL</c>, from one backward pass.
/// </summary>
public static class ResponseLosses
{
    /// <summary>
    /// Rewrites the model so that its output <see cref="ResponseNames.Logits"/> [N, V] holds the logits of the response
    /// positions named by the new input <see cref="ResponseNames.Index"/> [N]. The original logits output and the nodes
    /// only it needed are removed. Returns the response logits.
    /// </summary>
    public static Value GatherResponseLogits(Model model, string logits = "logits")
    {
        var g = model.Graph;
        var z = g.FindValue(logits) ?? throw new UserInputException($"the graph has no value named '{logits}'.");
        Onnx.Shapes.ShapeInference.Run(model);
        var b = new GraphBuilder(g, model.DefaultOpset);
        using var _ = b.Scope("response");
        var index = IndexInput(b);
        Value rows;
        if (z.Producer is { OpType: "MatMul" } head && head.Input(1) is { } w && RankOf(w) == 2 && head.Input(0) is { } h)
        {
            // (B, T, d) -> (N, d) -> (N, V): the head runs on the response rows only.
            rows = b.MatMul(HiddenRows(b, h, index), w);
        }
        else
        {
            var vocab = b.Slice(b.ShapeOf(z), [-1], [long.MaxValue], [0]);
            rows = b.Gather(b.Reshape(z, b.Concat(0, b.Ints(-1), vocab)), index, 0);
        }
        if (z.IsGraphOutput) g.RemoveOutput(z);
        var result = b.Output(b.Identity(rows), ResponseNames.Logits);
        g.RemoveUnusedNodes();
        return result;
    }

    /// <summary>The head of a language model: logits = <c>Hidden</c> x <c>Weight</c> (or x <c>Weight</c>^T when <c>Transposed</c>).</summary>
    /// <param name="Hidden">The final hidden states [..., d].</param>
    /// <param name="Weight">The head weight: [d, V], or the [V, d] embedding table of a tied head when <paramref name="Transposed"/>.</param>
    /// <param name="Transposed">The logits are the hidden states times the transpose of <paramref name="Weight"/>.</param>
    public sealed record Head(Value Hidden, Value Weight, bool Transposed);

    /// <summary>
    /// The head that makes <paramref name="logits"/> when it is a float MatMul of the hidden states by a rank-2 weight
    /// (directly, or through a Transpose of a tied embedding table); null for any other head.
    /// </summary>
    public static Head? FindHead(Model model, string logits = "logits")
    {
        ArgumentNullException.ThrowIfNull(model);
        var z = model.Graph.FindValue(logits);
        if (z?.Producer is not { OpType: "MatMul", Domain: "" or "ai.onnx" } matmul || matmul.Input(0) is not { } h || matmul.Input(1) is not { } w) return null;
        if (RankOf(w) != 2) return null;
        if (h.ElementType is not (ElementType.Float or ElementType.Undefined) || w.ElementType is not (ElementType.Float or ElementType.Undefined)) return null;
        if (w.Producer is { OpType: "Transpose", Domain: "" or "ai.onnx" } t && t.Input(0) is { } table && RankOf(table) == 2
            && t.GetInts("perm") is null or [1, 0])
            return new Head(h, table, true);
        return new Head(h, w, false);
    }

    /// <summary>
    /// The mean token cross-entropy over the labels other than -100 (what <see cref="LossGraphs.AppendCrossEntropy"/>
    /// computes) through the fused head: the positions that count are found in the graph from <c>labels</c>, and no
    /// [B T, V] tensor is built. <paramref name="head"/> must be frozen. Returns the loss output (named <paramref name="output"/>).
    /// </summary>
    public static Value AppendTokenCrossEntropyFused(Model model, Head head, string logits = "logits", string output = LossNames.Sft)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(head);
        var g = model.Graph;
        var b = new GraphBuilder(g, model.DefaultOpset);
        using var _ = b.Scope("loss/cross_entropy");
        var labels = LossGraphs.LabelsInput(model);
        var flat = b.Reshape(labels, -1);
        var counts = b.Op("Not", b.Equal(flat, b.Constant(TensorData.Scalar("ignore", LossNames.IgnoreIndex))));
        var index = b.Reshape(b.Op("NonZero", counts), -1);                                          // (N)
        var n = b.ShapeOf(index);
        var weight = b.Expand(b.Reciprocal(b.Op("Max", b.Cast(b.Reshape(n, []), ElementType.Float), b.Scalar(1f))), n); // 1 / max(N, 1)
        var node = FusedResponseHead.Append(b, HiddenRows(b, head.Hidden, index), head.Weight, head.Transposed, b.Gather(flat, index, 0), weight);
        if (g.FindValue(logits) is { IsGraphOutput: true } z) g.RemoveOutput(z);
        var loss = b.Output(b.Identity(node.Outputs[FusedResponseHead.LossOutput]), output);
        g.RemoveUnusedNodes();
        return loss;
    }

    /// <summary>The graph's <see cref="ResponseNames.Index"/> input, added (int64 [N]) when it lacks one.</summary>
    internal static Value IndexInput(GraphBuilder b) =>
        b.Graph.FindValue(ResponseNames.Index) ?? b.Input(ResponseNames.Index, ElementType.Int64, Dim.Symbol("response_tokens"));

    /// <summary>The rows of the hidden states (B, T, d) at the flat positions <paramref name="index"/>: (N, d).</summary>
    internal static Value HiddenRows(GraphBuilder b, Value hidden, Value index)
    {
        var width = b.Slice(b.ShapeOf(hidden), [-1], [long.MaxValue], [0]);
        return b.Gather(b.Reshape(hidden, b.Concat(0, b.Ints(-1), width)), index, 0);
    }

    /// <summary>
    /// Turns a forward model into the reference graph the fused head reads: it outputs
    /// <see cref="ResponseNames.ReferenceHidden"/> [N, d], the final hidden states at the response positions named by the
    /// input <see cref="ResponseNames.Index"/>. The head itself does not run. Throws when the head is not one
    /// <see cref="FindHead"/> recognises.
    /// </summary>
    public static void AppendReferenceHidden(Model model, string logits = "logits")
    {
        ArgumentNullException.ThrowIfNull(model);
        var head = FindHead(model, logits) ?? throw new UserInputException($"the logits '{logits}' are not a MatMul of the hidden states by a weight.");
        var g = model.Graph;
        var b = new GraphBuilder(g, model.DefaultOpset);
        using var _ = b.Scope("reference");
        var index = IndexInput(b);
        var rows = HiddenRows(b, head.Hidden, index);
        if (g.FindValue(logits) is { IsGraphOutput: true } z) g.RemoveOutput(z);
        b.Output(b.Identity(rows), ResponseNames.ReferenceHidden);
    }

    /// <summary>
    /// Turns a forward model into the frozen reference policy's graph: outputs <see cref="ResponseNames.ReferenceLogProbs"/>
    /// [N, V] (log-softmax of the response logits) and <see cref="ResponseNames.ReferenceTokenLogProbs"/> [N] (the
    /// label's log-probability, read from the input <c>labels</c>), computed on the response positions only.
    /// </summary>
    public static void AppendReference(Model model, string logits = "logits")
    {
        var g = model.Graph;
        var z = g.FindValue(ResponseNames.Logits) ?? GatherResponseLogits(model, logits);
        var b = new GraphBuilder(g, model.DefaultOpset);
        using var _ = b.Scope("reference");
        if (z.ElementType is not (ElementType.Float or ElementType.Undefined)) z = b.Cast(z, ElementType.Float);
        var labels = LossGraphs.LabelsInput(model);
        var logProbs = b.LogSoftmax(z, -1);
        var targets = b.Gather(b.Reshape(labels, -1), g.GetValue(ResponseNames.Index), 0);
        var picked = b.Squeeze(b.Op("GatherElements", [logProbs, b.Unsqueeze(targets, 1)], Onnx.Attribute.Of("axis", 1L)), 1);
        if (g.FindValue(ResponseNames.Logits) is { IsGraphOutput: true } rl) g.RemoveOutput(rl);
        b.Output(b.Identity(logProbs), ResponseNames.ReferenceLogProbs);
        b.Output(b.Identity(picked), ResponseNames.ReferenceTokenLogProbs);
    }

    /// <summary>The flat indices of the labels that count (not -100), in row-major order.</summary>
    public static long[] Index(ReadOnlySpan<long> labels)
    {
        var result = new List<long>();
        for (int i = 0; i < labels.Length; i++)
            if (labels[i] != LossNames.IgnoreIndex) result.Add(i);
        return [.. result];
    }

    private static int? RankOf(Value v) => v.Shape?.Rank ?? v.Initializer?.Dims.Length;
}

using SafeTune.Onnx;

namespace SafeTune.Autodiff.Losses;

/// <summary>Names of the loss subgraph's inputs and outputs.</summary>
public static class LossNames
{
    /// <summary>Int64 [batch, sequence] token labels; -100 marks ignored positions.</summary>
    public const string Labels = "labels";
    /// <summary>Float [batch, sequence, vocab] logits of the frozen reference model.</summary>
    public const string ReferenceLogits = "ref_logits";
    /// <summary>The supervised loss.</summary>
    public const string Sft = "loss_sft";
    /// <summary>The KL divergence to the reference.</summary>
    public const string Kl = "loss_kl";
    /// <summary>The combined, weighted loss.</summary>
    public const string Total = "loss";
    /// <summary>The label value that marks a position as ignored.</summary>
    public const long IgnoreIndex = -100;
}

/// <summary>Appends losses to a model as graph nodes, so that the backward builder differentiates them like any other op.</summary>
public static class LossGraphs
{
    /// <summary>The logits output the losses are appended to: one named <c>logits</c>, else the first float output of rank 3.</summary>
    public static Value FindLogits(Model model) =>
        model.Graph.Outputs.FirstOrDefault(o => o.Name == "logits")
        ?? model.Graph.Outputs.FirstOrDefault(o => o.ElementType == ElementType.Float && o.Shape?.Rank == 3)
        ?? throw new InvalidDataException("the model has no 'logits' output (float [batch, sequence, vocab]).");

    /// <summary>
    /// Token cross-entropy: a stable log-softmax over the vocabulary, the logit at position t scored against labels[t],
    /// averaged over the positions whose label is not -100. With every position ignored the loss is 0 (and so are the gradients).
    /// Adds the int64 input <see cref="LossNames.Labels"/> when the graph lacks it. Returns the loss value.
    /// </summary>
    public static Value AppendCrossEntropy(Model model, string logits = "logits", string output = LossNames.Sft)
    {
        var b = new GraphBuilder(model.Graph, model.DefaultOpset);
        using var _ = b.Scope("loss/cross_entropy");
        var (logProbs, mask, count, type) = Prepare(b, model, logits);                               // (N, V), (N), ()
        var labels = b.Reshape(LabelsInput(model), -1);                                          // (N)
        var safe = b.Where(b.Cast(mask, ElementType.Bool), labels, b.Constant(TensorData.Scalar("zero", 0L)));
        var picked = b.Squeeze(b.Op("GatherElements", [logProbs, b.Unsqueeze(safe, 1)], Onnx.Attribute.Of("axis", 1L)), 1); // (N)
        var nll = b.Mul(b.Neg(picked), mask);
        return Finish(b, b.ReduceSum(nll, [0], keepDims: false), count, type, output);
    }

    /// <summary>
    /// KL(p_ref || p_theta) from reference logits given as the input <see cref="LossNames.ReferenceLogits"/>: summed over
    /// the vocabulary, averaged over the positions whose label is not -100. Returns the loss value.
    /// </summary>
    public static Value AppendKl(Model model, string logits = "logits", string output = LossNames.Kl)
    {
        var b = new GraphBuilder(model.Graph, model.DefaultOpset);
        using var _ = b.Scope("loss/kl");
        var (logProbs, mask, count, type) = Prepare(b, model, logits);
        var refIn = model.Graph.FindValue(LossNames.ReferenceLogits)
            ?? b.Input(LossNames.ReferenceLogits, ElementType.Float, Dim.Symbol("batch"), Dim.Symbol("sequence"), model.Graph.GetValue(logits).Shape?[-1] ?? Dim.Unknown);
        if (refIn.ElementType != type) refIn = b.Cast(refIn, type);
        var refLogProbs = b.LogSoftmax(b.Reshape(refIn, b.Concat(0, b.Ints(-1), b.Slice(b.ShapeOf(refIn), [-1], [long.MaxValue], [0]))), -1);
        var perToken = b.ReduceSum(b.Mul(b.Exp(refLogProbs), b.Sub(refLogProbs, logProbs)), [-1], keepDims: false); // (N)
        return Finish(b, b.ReduceSum(b.Mul(perToken, mask), [0], keepDims: false), count, type, output);
    }

    /// <summary>
    /// sum_i w_i * loss_i where each weight is a float scalar graph input, so weights (beta) change every step without
    /// rebuilding the graph. Returns the total.
    /// </summary>
    public static Value AppendWeightedSum(Model model, IReadOnlyList<(string Loss, string WeightInput)> terms, string output = LossNames.Total)
    {
        var b = new GraphBuilder(model.Graph, model.DefaultOpset);
        using var _ = b.Scope("loss/weighted");
        Value? total = null;
        foreach (var (loss, weightName) in terms)
        {
            var lossValue = model.Graph.GetValue(loss);
            var w = model.Graph.FindValue(weightName) ?? b.Input(weightName, lossValue.ElementType == ElementType.Undefined ? ElementType.Float : lossValue.ElementType);
            var term = b.Mul(lossValue, w);
            total = total is null ? term : b.Add(total, term);
        }
        if (total is null) throw new UserInputException("a weighted sum needs at least one loss.");
        return b.Output(b.Identity(total), output);
    }

    /// <summary>The graph's <see cref="LossNames.Labels"/> input, added (int64 [batch, sequence]) when it lacks one.</summary>
    internal static Value LabelsInput(Model model) =>
        model.Graph.FindValue(LossNames.Labels) ?? model.Graph.AddInput(LossNames.Labels, ElementType.Int64, new Shape([Dim.Symbol("batch"), Dim.Symbol("sequence")]));

    private static (Value logProbs, Value mask, Value count, ElementType type) Prepare(GraphBuilder b, Model model, string logits)
    {
        var z = model.Graph.FindValue(logits) ?? throw new UserInputException($"the graph has no value named '{logits}'.");
        var vocab = b.Slice(b.ShapeOf(z), [-1], [long.MaxValue], [0]);
        var logProbs = b.LogSoftmax(b.Reshape(z, b.Concat(0, b.Ints(-1), vocab)), -1);        // (N, V)
        var labels = b.Reshape(LabelsInput(model), -1);
        var type = z.ElementType == ElementType.Undefined ? ElementType.Float : z.ElementType;
        var mask = b.Cast(b.Op("Not", b.Equal(labels, b.Constant(TensorData.Scalar("ignore", LossNames.IgnoreIndex)))), type); // (N)
        var count = b.ReduceSum(mask, [0], keepDims: false);
        return (logProbs, mask, count, type);
    }

    private static Value Finish(GraphBuilder b, Value sum, Value count, ElementType type, string output)
    {
        var one = type == ElementType.Double ? b.Constant(TensorData.Scalar("one", 1.0))
            : type == ElementType.Float16 ? b.Constant(TensorData.Scalar("one", (Half)1)) : b.Scalar(1f);
        var denominator = b.Op("Max", count, one);
        return b.Output(b.Div(sum, denominator), output);
    }
}

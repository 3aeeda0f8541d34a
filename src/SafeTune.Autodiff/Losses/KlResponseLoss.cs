using SafeTune.Onnx;

namespace SafeTune.Autodiff.Losses;

/// <summary>
/// The <see cref="ResponseLossKind.CrossEntropyAndKl"/> loss. The KL reads the reference's log-probabilities, or its
/// hidden rows when the head is fused.
/// </summary>
internal sealed class KlResponseLoss : ResponseLoss
{
    public override ResponseLossKind Kind => ResponseLossKind.CrossEntropyAndKl;

    public override IReadOnlyList<string> Inputs(bool fusedHead) =>
        [ResponseNames.Index, fusedHead ? ResponseNames.ReferenceHidden : ResponseNames.ReferenceLogProbs, ResponseNames.SftWeight, ResponseNames.KlWeight];

    public override ResponseFeeds Feeds(ResponseFeedSource source)
    {
        ArgumentNullException.ThrowIfNull(source);
        return new ResponseFeeds(source.Index, new Dictionary<string, float[]>(StringComparer.Ordinal)
        {
            [ResponseNames.SftWeight] = PerToken(source, source.Weights.CrossEntropy),
            [ResponseNames.KlWeight] = PerToken(source, source.Weights.Kl),
        });
    }

    private protected override bool CanFuseHead => true;

    private protected override (Value, IReadOnlyList<(Value, string)>) Terms(ResponseTerms t)
    {
        var b = t.B;
        var refLp = t.Inputs[ResponseNames.ReferenceLogProbs];
        var kl = b.ReduceSum(b.Mul(b.Exp(refLp), b.Sub(refLp, t.LogProbs)), [-1], keepDims: false);      // (N)
        var loss = b.Add(t.WeightedSum(t.CrossEntropy, ResponseNames.SftWeight), t.WeightedSum(kl, ResponseNames.KlWeight));
        return (loss, [(t.CrossEntropy, ResponseNames.MeanSft), (kl, ResponseNames.MeanKl)]);
    }

    private protected override (Node, IReadOnlyList<(Value, string)>) FusedTerms(GraphBuilder b, ResponseLosses.Head head, Value rows, Value targets,
        IReadOnlyDictionary<string, Value> inputs)
    {
        var node = FusedResponseHead.Append(b, rows, head.Weight, head.Transposed, targets, inputs[ResponseNames.SftWeight],
            inputs[ResponseNames.KlWeight], inputs[ResponseNames.ReferenceHidden]);
        return (node, [(node.Outputs[FusedResponseHead.CrossEntropyOutput], ResponseNames.MeanSft), (node.Outputs[FusedResponseHead.KlOutput], ResponseNames.MeanKl)]);
    }
}

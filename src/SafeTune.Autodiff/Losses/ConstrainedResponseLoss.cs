using SafeTune.Onnx;

namespace SafeTune.Autodiff.Losses;

/// <summary>The <see cref="ResponseLossKind.Constrained"/> loss: the reference's log-probability of each label, and a beta per token.</summary>
internal sealed class ConstrainedResponseLoss : ResponseLoss
{
    public override ResponseLossKind Kind => ResponseLossKind.Constrained;

    public override IReadOnlyList<string> Inputs(bool fusedHead) =>
        [ResponseNames.Index, ResponseNames.ReferenceTokenLogProbs, ResponseNames.TokenBeta, ResponseNames.ConstrainedWeight];

    public override ResponseFeeds Feeds(ResponseFeedSource source)
    {
        ArgumentNullException.ThrowIfNull(source);
        var beta = source.TokenBeta ?? throw new ArgumentException($"the constrained loss needs each token's beta ({ResponseNames.TokenBeta}).", nameof(source));
        return new ResponseFeeds(source.Index, new Dictionary<string, float[]>(StringComparer.Ordinal)
        {
            [ResponseNames.ConstrainedWeight] = PerToken(source, source.Weights.Mean),
            [ResponseNames.TokenBeta] = PerToken(source, i => (float)beta(i)),
        });
    }

    private protected override (Value, IReadOnlyList<(Value, string)>) Terms(ResponseTerms t)
    {
        var b = t.B;
        var refToken = t.Inputs[ResponseNames.ReferenceTokenLogProbs];
        var beta = t.Inputs[ResponseNames.TokenBeta];
        // softplus(x) = (x + |x|) / 2 + log(1 + exp(-|x|)), stable for any x, from ops that all have gradient rules.
        var x = b.Neg(b.Mul(beta, b.Sub(t.Picked, refToken)));
        var abs = b.Op("Abs", x);
        var softplus = b.Add(b.Mul(b.Add(x, abs), b.Scalar(0.5f)), b.Log(b.Add(b.Scalar(1f), b.Exp(b.Neg(abs)))));
        var term = b.Div(b.Mul(softplus, b.Scalar(2f)), beta);                                             // (N)
        return (t.WeightedSum(term, ResponseNames.ConstrainedWeight), [(t.CrossEntropy, ResponseNames.MeanSft), (term, ResponseNames.MeanConstrained)]);
    }
}

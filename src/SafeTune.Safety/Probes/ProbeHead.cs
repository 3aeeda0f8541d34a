namespace SafeTune.Safety.Probes;

/// <summary>The kind of classifier on top of the pooled, standardised activations.</summary>
public enum ProbeHeadKind
{
    /// <summary>L2-regularised logistic regression (<see cref="LogisticRegression"/>).</summary>
    Logistic,

    /// <summary>The paper's MLP, d -> hidden -> ReLU -> 2 (<see cref="MlpHead"/>).</summary>
    Mlp,
}

/// <summary>
/// A probe head: maps one pooled feature vector (raw, as the extractor returns it) to the log-odds that the prompt is
/// harmful. The head owns its <see cref="Standardizer"/>, so callers never standardise themselves.
/// </summary>
public abstract class ProbeHead
{
    private protected ProbeHead() { }

    /// <summary>The kind of head.</summary>
    public abstract ProbeHeadKind Kind { get; }

    /// <summary>The feature standardisation applied before the head.</summary>
    public abstract Standardizer Standardizer { get; }

    /// <summary>The number of input features.</summary>
    public int Dimension => Standardizer.Dimension;

    /// <summary>The log-odds of the harmful class for one example (raw features), computed in double precision.</summary>
    /// <exception cref="SafeTune.Onnx.UserInputException">The length differs from <see cref="Dimension"/>.</exception>
    public abstract double PredictLogit(ReadOnlySpan<float> x);

    /// <summary>The harm probability of one example (raw features).</summary>
    public double PredictProbability(ReadOnlySpan<float> x) => LogisticRegression.Sigmoid(PredictLogit(x));

    /// <summary>The harm probability of each example (raw feature rows).</summary>
    public double[] PredictProbability(IReadOnlyList<float[]> x)
    {
        ArgumentNullException.ThrowIfNull(x);
        var p = new double[x.Count];
        for (int i = 0; i < p.Length; i++) p[i] = PredictProbability(x[i]);
        return p;
    }

    /// <summary>
    /// The fast float32 scoring path: the standardisation folded into the first layer's weights (one dot product per
    /// example for the logistic head).
    /// </summary>
    public ProbeScorer CreateScorer() => ProbeScorer.Create(this);
}

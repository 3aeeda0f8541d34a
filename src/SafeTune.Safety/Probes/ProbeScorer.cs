using System.Numerics.Tensors;
using SafeTune.Onnx;

namespace SafeTune.Safety.Probes;

/// <summary>
/// The fast managed scoring path of a probe head, in float32: the standardisation is folded into the first layer
/// (<c>w' = w / std</c>, <c>b' = b - sum(w * mean / std)</c>, folded in double precision), so the logistic head costs one
/// dot product per example and the MLP head one matrix-vector product. The MLP's two output logits are folded into one
/// (<c>logit[1] - logit[0]</c>). Immutable and thread-safe.
/// </summary>
public sealed class ProbeScorer
{
    private readonly float[] _w1; // [hidden, d] folded (hidden = 1 for the logistic head)
    private readonly float[] _b1; // [hidden]
    private readonly float[]? _w2; // [hidden]: w2[1] - w2[0], MLP only
    private readonly float _b2;

    private ProbeScorer(ProbeHeadKind kind, int dimension, float[] w1, float[] b1, float[]? w2, float b2)
    {
        Kind = kind;
        Dimension = dimension;
        _w1 = w1;
        _b1 = b1;
        _w2 = w2;
        _b2 = b2;
    }

    /// <summary>The head kind.</summary>
    public ProbeHeadKind Kind { get; }

    /// <summary>The number of input features.</summary>
    public int Dimension { get; }

    /// <summary>The folded first-layer weights, <c>[hidden, d]</c> row-major (one row for the logistic head).</summary>
    public ReadOnlySpan<float> FoldedWeights => _w1;

    /// <summary>The folded first-layer bias (one value for the logistic head).</summary>
    public ReadOnlySpan<float> FoldedBias => _b1;

    /// <summary>The MLP's output weights <c>w2[1] - w2[0]</c>; empty for the logistic head.</summary>
    public ReadOnlySpan<float> OutputWeights => _w2;

    /// <summary>The MLP's output bias <c>b2[1] - b2[0]</c>; 0 for the logistic head.</summary>
    public float OutputBias => _b2;

    /// <summary>Folds a head's standardisation into its weights.</summary>
    public static ProbeScorer Create(ProbeHead head)
    {
        ArgumentNullException.ThrowIfNull(head);
        var s = head.Standardizer;
        int d = head.Dimension;
        switch (head)
        {
            case LogisticRegression lr:
            {
                var (w, b) = Fold(s, 1, d, j => lr.Weights[j], _ => lr.Bias);
                return new ProbeScorer(ProbeHeadKind.Logistic, d, w, b, null, 0);
            }
            case MlpHead mlp:
            {
                var w1 = mlp.W1.ToArray();
                var b1 = mlp.B1.ToArray();
                int h = mlp.HiddenSize;
                var (w, b) = Fold(s, h, d, i => w1[i], k => b1[k]);
                var w2 = new float[h];
                var src = mlp.W2;
                for (int k = 0; k < h; k++) w2[k] = (float)((double)src[h + k] - src[k]);
                return new ProbeScorer(ProbeHeadKind.Mlp, d, w, b, w2, (float)((double)mlp.B2[1] - mlp.B2[0]));
            }
            default:
                throw new ArgumentException($"unknown head type {head.GetType().Name}", nameof(head));
        }
    }

    /// <summary>w'[k, j] = w[k, j] / std[j]; b'[k] = b[k] - sum_j w[k, j] mean[j] / std[j]; in double, stored as float.</summary>
    private static (float[] W, float[] B) Fold(Standardizer s, int rows, int d, Func<int, double> w, Func<int, double> b)
    {
        var fw = new float[rows * d];
        var fb = new float[rows];
        for (int k = 0; k < rows; k++)
        {
            double bias = b(k);
            for (int j = 0; j < d; j++)
            {
                double v = w(k * d + j) / s.Std[j];
                fw[k * d + j] = (float)v;
                bias -= v * s.Mean[j];
            }
            fb[k] = (float)bias;
        }
        return (fw, fb);
    }

    /// <summary>The harm log-odds of one example (raw features).</summary>
    /// <exception cref="UserInputException">The length differs from <see cref="Dimension"/>.</exception>
    public float Logit(ReadOnlySpan<float> features)
    {
        if (features.Length != Dimension) throw new UserInputException($"expected {Dimension} features, got {features.Length}");
        if (_w2 is null) return TensorPrimitives.Dot(features, _w1) + _b1[0];
        int h = _b1.Length;
        Span<float> hidden = h <= 2048 ? stackalloc float[h] : new float[h];
        for (int k = 0; k < h; k++) hidden[k] = TensorPrimitives.Dot(features, _w1.AsSpan(k * Dimension, Dimension));
        TensorPrimitives.Add(hidden, _b1, hidden);
        TensorPrimitives.Max(hidden, 0f, hidden);
        return TensorPrimitives.Dot(hidden, _w2) + _b2;
    }

    /// <summary>The harm probability of one example (raw features).</summary>
    public float Score(ReadOnlySpan<float> features) => Sigmoid(Logit(features));

    /// <summary>
    /// Harm probabilities of a batch: <paramref name="features"/> holds <c>probabilities.Length</c> rows of
    /// <see cref="Dimension"/> floats, row-major.
    /// </summary>
    /// <exception cref="UserInputException">The sizes disagree.</exception>
    public void Score(ReadOnlySpan<float> features, Span<float> probabilities)
    {
        int n = probabilities.Length, d = Dimension;
        if (features.Length != (long)n * d) throw new UserInputException($"expected {n} x {d} features, got {features.Length}");
        if (_w2 is null)
        {
            for (int i = 0; i < n; i++) probabilities[i] = TensorPrimitives.Dot(features.Slice(i * d, d), _w1);
            TensorPrimitives.Add(probabilities, _b1[0], probabilities);
        }
        else
        {
            // Hidden unit outer, rows inner: each folded weight row is read once per batch while it is in cache.
            int h = _b1.Length;
            probabilities.Fill(_b2);
            for (int k = 0; k < h; k++)
            {
                var w = _w1.AsSpan(k * d, d);
                float bias = _b1[k], out2 = _w2[k];
                for (int i = 0; i < n; i++)
                {
                    float a = TensorPrimitives.Dot(features.Slice(i * d, d), w) + bias;
                    if (a > 0) probabilities[i] += out2 * a;
                }
            }
        }
        TensorPrimitives.Sigmoid(probabilities, probabilities);
    }

    private static float Sigmoid(float t) => t >= 0 ? 1 / (1 + MathF.Exp(-t)) : MathF.Exp(t) / (1 + MathF.Exp(t));
}

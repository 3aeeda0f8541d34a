using System.Numerics.Tensors;
using SafeTune.Onnx;

namespace SafeTune.Safety.Probes;

/// <summary>Options for training an <see cref="MlpHead"/>.</summary>
public sealed record MlpTrainOptions
{
    /// <summary>The hidden width (the paper's head uses 512).</summary>
    public int HiddenSize { get; init; } = 512;
    /// <summary>AdamW learning rate.</summary>
    public double LearningRate { get; init; } = 1e-3;
    /// <summary>AdamW decoupled weight decay, applied to every weight and bias (as <c>torch.optim.AdamW</c> does).</summary>
    public double WeightDecay { get; init; } = 0.01;
    /// <summary>AdamW beta1.</summary>
    public double Beta1 { get; init; } = 0.9;
    /// <summary>AdamW beta2.</summary>
    public double Beta2 { get; init; } = 0.999;
    /// <summary>AdamW epsilon.</summary>
    public double Epsilon { get; init; } = 1e-8;
    /// <summary>Examples per optimizer step.</summary>
    public int BatchSize { get; init; } = 64;
    /// <summary>The most epochs run.</summary>
    public int MaxEpochs { get; init; } = 100;
    /// <summary>Early stopping: epochs without a lower validation loss before training stops.</summary>
    public int Patience { get; init; } = 10;
    /// <summary>Early stopping: the decrease of the validation loss that counts as an improvement.</summary>
    public double MinImprovement { get; init; } = 1e-4;
    /// <summary>
    /// The share of each class held out (stratified) to choose the stopping epoch. 0 trains on everything for exactly
    /// <see cref="MaxEpochs"/> epochs (a fixed budget).
    /// </summary>
    public double ValidationFraction { get; init; } = 0.2;
    /// <summary>Seed of the initial weights, the validation split and the batch order.</summary>
    public int Seed { get; init; }
}

/// <summary>What <see cref="MlpHead.Train"/> did.</summary>
/// <param name="Head">The head with the weights of the best epoch (the last one when there is no validation split).</param>
/// <param name="BestEpoch">The epoch (from 1) whose weights were kept.</param>
/// <param name="EpochsRun">The epochs run before stopping.</param>
/// <param name="TrainLoss">Mean training cross-entropy per epoch (over the epoch's steps, before each update).</param>
/// <param name="ValidationLoss">Validation cross-entropy after each epoch; empty without a validation split.</param>
public sealed record MlpTrainResult(MlpHead Head, int BestEpoch, int EpochsRun, IReadOnlyList<double> TrainLoss, IReadOnlyList<double> ValidationLoss);

/// <summary>
/// The paper's probe head: standardised features -> Linear(d, hidden) -> ReLU -> Linear(hidden, 2), trained with
/// cross-entropy and AdamW. Weights are float32 in PyTorch's <c>nn.Linear</c> layout (<c>[out, in]</c>, row-major);
/// the harm log-odds is <c>logit[1] - logit[0]</c>, so the probability equals <c>softmax(logits)[1]</c>.
/// Training is deterministic: the same inputs and options on the same machine give bit-identical weights.
/// </summary>
public sealed class MlpHead : ProbeHead
{
    private readonly float[] _w1, _b1, _w2, _b2;

    /// <summary>Creates a head from stored parameters.</summary>
    /// <param name="standardizer">The feature standardisation.</param>
    /// <param name="w1">First layer weights, <c>[hidden, d]</c> row-major.</param>
    /// <param name="b1">First layer bias, <c>[hidden]</c>.</param>
    /// <param name="w2">Second layer weights, <c>[2, hidden]</c> row-major (row 0 harmless, row 1 harmful).</param>
    /// <param name="b2">Second layer bias, <c>[2]</c>.</param>
    /// <exception cref="UserInputException">The sizes disagree or a value is not finite.</exception>
    public MlpHead(Standardizer standardizer, ReadOnlySpan<float> w1, ReadOnlySpan<float> b1, ReadOnlySpan<float> w2, ReadOnlySpan<float> b2)
    {
        ArgumentNullException.ThrowIfNull(standardizer);
        int d = standardizer.Dimension, h = b1.Length;
        if (h < 1) throw new UserInputException("the hidden layer is empty");
        if (w1.Length != (long)h * d) throw new UserInputException($"w1 has {w1.Length} values, not {h} x {d}");
        if (w2.Length != 2 * h) throw new UserInputException($"w2 has {w2.Length} values, not 2 x {h}");
        if (b2.Length != 2) throw new UserInputException($"b2 has {b2.Length} values, not 2");
        foreach (var (name, span) in new[] { ("w1", w1.ToArray()), ("b1", b1.ToArray()), ("w2", w2.ToArray()), ("b2", b2.ToArray()) })
            if (span.Any(v => !float.IsFinite(v))) throw new UserInputException($"a value of {name} is not finite");
        Standardizer = standardizer;
        _w1 = w1.ToArray();
        _b1 = b1.ToArray();
        _w2 = w2.ToArray();
        _b2 = b2.ToArray();
    }

    /// <inheritdoc/>
    public override ProbeHeadKind Kind => ProbeHeadKind.Mlp;

    /// <inheritdoc/>
    public override Standardizer Standardizer { get; }

    /// <summary>The hidden width.</summary>
    public int HiddenSize => _b1.Length;

    /// <summary>First layer weights, <c>[hidden, d]</c> row-major.</summary>
    public ReadOnlySpan<float> W1 => _w1;

    /// <summary>First layer bias.</summary>
    public ReadOnlySpan<float> B1 => _b1;

    /// <summary>Second layer weights, <c>[2, hidden]</c> row-major.</summary>
    public ReadOnlySpan<float> W2 => _w2;

    /// <summary>Second layer bias.</summary>
    public ReadOnlySpan<float> B2 => _b2;

    /// <inheritdoc/>
    public override double PredictLogit(ReadOnlySpan<float> x)
    {
        int d = Dimension, h = HiddenSize;
        if (x.Length != d) throw new UserInputException($"expected {d} features, got {x.Length}");
        var z = Standardizer.Transform(x);
        double l0 = _b2[0], l1 = _b2[1];
        for (int k = 0; k < h; k++)
        {
            var w = _w1.AsSpan(k * d, d);
            double a = _b1[k];
            for (int j = 0; j < d; j++) a += w[j] * z[j];
            if (a <= 0) continue;
            l0 += _w2[k] * a;
            l1 += _w2[h + k] * a;
        }
        return l1 - l0;
    }

    /// <summary>
    /// Trains a head: the standardiser is fitted on the training part, weights start from PyTorch's <c>nn.Linear</c>
    /// initialisation (uniform in +-1/sqrt(fan_in)) drawn from <see cref="Random"/> seeded by
    /// <see cref="MlpTrainOptions.Seed"/>, batches are reshuffled every epoch, and the weights of the epoch with the
    /// lowest validation cross-entropy are kept (early stopping after <see cref="MlpTrainOptions.Patience"/> epochs
    /// without an improvement of at least <see cref="MlpTrainOptions.MinImprovement"/>).
    /// </summary>
    /// <exception cref="UserInputException">The inputs are empty or inconsistent, a class is absent, a value is not finite, or an option is out of range.</exception>
    public static MlpTrainResult Train(IReadOnlyList<float[]> x, IReadOnlyList<bool> y, MlpTrainOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(y);
        var o = options ?? new MlpTrainOptions();
        if (o.HiddenSize < 1 || o.BatchSize < 1 || o.MaxEpochs < 1 || o.Patience < 1)
            throw new UserInputException("hidden size, batch size, epochs and patience must be at least 1");
        if (!(o.LearningRate > 0) || !(o.WeightDecay >= 0) || !(o.ValidationFraction >= 0 && o.ValidationFraction < 1))
            throw new UserInputException("the learning rate must be positive, the weight decay non-negative and the validation fraction in [0, 1)");
        if (x.Count != y.Count) throw new UserInputException("x and y differ in length");
        if (x.Count == 0) throw new UserInputException("no examples");
        if (y.All(v => v) || y.All(v => !v)) throw new UserInputException("both classes must be present");
        int d = x[0].Length;
        foreach (var row in x)
        {
            if (row.Length != d) throw new UserInputException("rows differ in length");
            foreach (var v in row)
                if (!float.IsFinite(v)) throw new UserInputException("a feature is not finite");
        }

        var rng = new Random(o.Seed);
        var (train, validation) = Splits.Stratified(y, o.ValidationFraction, rng);
        var standardizer = Standardizer.Fit([.. train.Select(i => x[i])]);
        float[] Standardize(IReadOnlyList<int> rows)
        {
            var z = new float[rows.Count * d];
            var buffer = new double[d];
            for (int r = 0; r < rows.Count; r++)
            {
                standardizer.Transform(x[rows[r]], buffer);
                for (int j = 0; j < d; j++) z[r * d + j] = (float)buffer[j];
            }
            return z;
        }
        var zTrain = Standardize(train);
        var yTrain = train.Select(i => y[i] ? 1 : 0).ToArray();
        var zVal = Standardize(validation);
        var yVal = validation.Select(i => y[i] ? 1 : 0).ToArray();

        var trainer = new MlpTrainer(d, o.HiddenSize, o, rng);
        var order = Enumerable.Range(0, train.Count).ToArray();
        int batch = Math.Min(o.BatchSize, train.Count);
        var zBatch = new float[batch * d];
        var yBatch = new int[batch];
        var trainLoss = new List<double>();
        var valLoss = new List<double>();
        float[]? best = null;
        double bestLoss = double.PositiveInfinity;
        int bestEpoch = 0, epoch = 0;
        while (epoch < o.MaxEpochs)
        {
            epoch++;
            Shuffle(order, rng);
            double sum = 0;
            for (int start = 0; start < order.Length; start += batch)
            {
                int rows = Math.Min(batch, order.Length - start);
                for (int r = 0; r < rows; r++)
                {
                    zTrain.AsSpan(order[start + r] * d, d).CopyTo(zBatch.AsSpan(r * d, d));
                    yBatch[r] = yTrain[order[start + r]];
                }
                sum += trainer.Step(zBatch.AsMemory(0, rows * d), yBatch.AsSpan(0, rows)) * (double)rows;
            }
            trainLoss.Add(sum / order.Length);
            if (validation.Count == 0) continue;
            double loss = trainer.Loss(zVal, yVal);
            valLoss.Add(loss);
            if (loss < bestLoss - o.MinImprovement)
            {
                bestLoss = loss;
                bestEpoch = epoch;
                best = trainer.Parameters.ToArray();
            }
            else if (epoch - bestEpoch >= o.Patience) break;
        }
        if (best is null)
        {
            best = trainer.Parameters.ToArray();
            bestEpoch = epoch;
        }
        var head = MlpTrainer.ToHead(standardizer, d, o.HiddenSize, best);
        return new MlpTrainResult(head, bestEpoch, epoch, trainLoss, valLoss);
    }

    private static void Shuffle(int[] a, Random rng)
    {
        for (int i = a.Length - 1; i > 0; i--)
        {
            int k = rng.Next(i + 1);
            (a[i], a[k]) = (a[k], a[i]);
        }
    }
}

/// <summary>Stratified splits shared by the probe trainers.</summary>
internal static class Splits
{
    /// <summary>
    /// Holds out <paramref name="fraction"/> of each class (rounded, at least one per class when the fraction is positive
    /// and the class has two or more examples): each class's indices are shuffled with <paramref name="rng"/> and the first
    /// ones held out. Both lists come back in ascending order.
    /// </summary>
    public static (List<int> Train, List<int> Held) Stratified(IReadOnlyList<bool> y, double fraction, Random rng)
    {
        var train = new List<int>();
        var held = new List<int>();
        foreach (var cls in new[] { true, false })
        {
            var idx = Enumerable.Range(0, y.Count).Where(i => y[i] == cls).ToArray();
            for (int i = idx.Length - 1; i > 0; i--)
            {
                int k = rng.Next(i + 1);
                (idx[i], idx[k]) = (idx[k], idx[i]);
            }
            int n = fraction <= 0 || idx.Length < 2 ? 0 : Math.Clamp((int)Math.Round(fraction * idx.Length), 1, idx.Length - 1);
            held.AddRange(idx[..n]);
            train.AddRange(idx[n..]);
        }
        train.Sort();
        held.Sort();
        return (train, held);
    }
}

/// <summary>
/// One MLP and its AdamW state over one flat float32 parameter buffer laid out as <c>[w1 (h x d), b1 (h), w2 (2 x h), b2 (2)]</c>.
/// The arithmetic follows <c>torch.optim.AdamW</c> (PyTorch 1.13, single-tensor path): decoupled decay
/// <c>p *= 1 - lr * wd</c>, bias-corrected moments, <c>p -= lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps)</c>.
/// Matrix products run row by row with <see cref="TensorPrimitives"/>; every output element is computed by one
/// iteration in a fixed order, so parallel runs are bit-identical.
/// </summary>
internal sealed class MlpTrainer
{
    private readonly int _d, _h;
    private readonly float[] _p, _g, _m, _v, _tmp;
    private readonly double _lr, _wd, _beta1, _beta2;
    private readonly float _eps;
    private float[] _pre = [], _act = [], _dAct = [];
    private int _step;

    public MlpTrainer(int d, int h, MlpTrainOptions o, Random rng) : this(d, h, o, Init(d, h, rng)) { }

    public MlpTrainer(int d, int h, MlpTrainOptions o, float[] initial)
    {
        _d = d;
        _h = h;
        if (initial.Length != Count(d, h)) throw new UserInputException($"expected {Count(d, h)} parameters, got {initial.Length}");
        _p = (float[])initial.Clone();
        _g = new float[_p.Length];
        _m = new float[_p.Length];
        _v = new float[_p.Length];
        _tmp = new float[_p.Length];
        (_lr, _wd, _beta1, _beta2, _eps) = (o.LearningRate, o.WeightDecay, o.Beta1, o.Beta2, (float)o.Epsilon);
    }

    public static int Count(int d, int h) => h * d + h + 2 * h + 2;

    public ReadOnlySpan<float> Parameters => _p;

    public ReadOnlySpan<float> Gradients => _g;

    private int W1 => 0;
    private int B1 => _h * _d;
    private int W2 => B1 + _h;
    private int B2 => W2 + 2 * _h;

    /// <summary>PyTorch's <c>nn.Linear</c> default: weights and biases uniform in +-1/sqrt(fan_in).</summary>
    private static float[] Init(int d, int h, Random rng)
    {
        var p = new float[Count(d, h)];
        double a1 = 1 / Math.Sqrt(d), a2 = 1 / Math.Sqrt(h);
        int i = 0;
        for (; i < h * d + h; i++) p[i] = (float)((rng.NextDouble() * 2 - 1) * a1);
        for (; i < p.Length; i++) p[i] = (float)((rng.NextDouble() * 2 - 1) * a2);
        return p;
    }

    public static MlpHead ToHead(Standardizer s, int d, int h, float[] p)
    {
        var span = p.AsSpan();
        return new MlpHead(s, span[..(h * d)], span.Slice(h * d, h), span.Slice(h * d + h, 2 * h), span.Slice(h * d + 3 * h, 2));
    }

    /// <summary>Mean cross-entropy of standardised rows <paramref name="z"/> (row-major) against labels 0/1.</summary>
    public double Loss(ReadOnlyMemory<float> z, ReadOnlySpan<int> y)
    {
        int rows = y.Length;
        if (z.Length != rows * _d) throw new UserInputException($"expected {rows} x {_d} features, got {z.Length}");
        Forward(z, rows);
        double sum = 0;
        for (int i = 0; i < rows; i++) sum += RowLoss(i, y[i], out _, out _);
        return sum / rows;
    }

    /// <summary>One AdamW step on a batch; returns the batch's mean cross-entropy before the update.</summary>
    public double Step(ReadOnlyMemory<float> z, ReadOnlySpan<int> y)
    {
        int rows = y.Length, d = _d;
        if (z.Length != rows * d) throw new UserInputException($"expected {rows} x {d} features, got {z.Length}");
        Forward(z, rows);
        var dl = new float[rows * 2];
        double sum = 0;
        for (int i = 0; i < rows; i++)
        {
            sum += RowLoss(i, y[i], out float p0, out float p1);
            dl[2 * i] = (p0 - (y[i] == 0 ? 1 : 0)) / rows;
            dl[2 * i + 1] = (p1 - (y[i] == 1 ? 1 : 0)) / rows;
        }
        Backward(z, rows, dl);
        Update();
        return sum / rows;
    }

    private void Forward(ReadOnlyMemory<float> z, int rows)
    {
        int d = _d, h = _h;
        if (_pre.Length < rows * h) { _pre = new float[rows * h]; _act = new float[rows * h]; _dAct = new float[rows * h]; }
        Parallel.For(0, rows, i =>
        {
            var zi = z.Span.Slice(i * d, d);
            var pre = _pre.AsSpan(i * h, h);
            for (int k = 0; k < h; k++) pre[k] = TensorPrimitives.Dot(zi, _p.AsSpan(W1 + k * d, d));
            TensorPrimitives.Add(pre, _p.AsSpan(B1, h), pre);
            TensorPrimitives.Max(pre, 0f, _act.AsSpan(i * h, h));
        });
    }

    private double RowLoss(int i, int label, out float p0, out float p1)
    {
        int h = _h;
        var a = _act.AsSpan(i * h, h);
        float l0 = TensorPrimitives.Dot(a, _p.AsSpan(W2, h)) + _p[B2];
        float l1 = TensorPrimitives.Dot(a, _p.AsSpan(W2 + h, h)) + _p[B2 + 1];
        float max = Math.Max(l0, l1);
        float e0 = MathF.Exp(l0 - max), e1 = MathF.Exp(l1 - max);
        float s = e0 + e1;
        p0 = e0 / s;
        p1 = e1 / s;
        return max + Math.Log(s) - (label == 1 ? l1 : l0);
    }

    private void Backward(ReadOnlyMemory<float> z, int rows, float[] dl)
    {
        int d = _d, h = _h;
        Array.Clear(_g);
        var g = _g.AsSpan();
        // Second layer: dW2[c] = sum_i dl[i, c] a_i, db2[c] = sum_i dl[i, c].
        for (int i = 0; i < rows; i++)
        {
            var a = _act.AsSpan(i * h, h);
            TensorPrimitives.MultiplyAdd(a, dl[2 * i], g.Slice(W2, h), g.Slice(W2, h));
            TensorPrimitives.MultiplyAdd(a, dl[2 * i + 1], g.Slice(W2 + h, h), g.Slice(W2 + h, h));
            g[B2] += dl[2 * i];
            g[B2 + 1] += dl[2 * i + 1];
        }
        // Through the ReLU: dpre_i = (dl[i,0] w2[0] + dl[i,1] w2[1]) * (pre_i > 0).
        Parallel.For(0, rows, i =>
        {
            var da = _dAct.AsSpan(i * h, h);
            TensorPrimitives.Multiply(_p.AsSpan(W2, h), dl[2 * i], da);
            TensorPrimitives.MultiplyAdd(_p.AsSpan(W2 + h, h), dl[2 * i + 1], da, da);
            var pre = _pre.AsSpan(i * h, h);
            for (int k = 0; k < h; k++) if (pre[k] <= 0) da[k] = 0;
        });
        for (int i = 0; i < rows; i++) TensorPrimitives.Add(g.Slice(B1, h), _dAct.AsSpan(i * h, h), g.Slice(B1, h));
        // First layer: dW1[k] = sum_i dpre[i, k] z_i, one hidden unit per iteration.
        Parallel.For(0, h, k =>
        {
            var row = _g.AsSpan(W1 + k * d, d);
            for (int i = 0; i < rows; i++)
            {
                float c = _dAct[i * h + k];
                if (c != 0) TensorPrimitives.MultiplyAdd(z.Span.Slice(i * d, d), c, row, row);
            }
        });
    }

    private void Update()
    {
        _step++;
        // Scalars in double, as PyTorch computes them in Python before applying them to float32 tensors.
        double bc1 = 1 - Math.Pow(_beta1, _step);
        float bc2Sqrt = (float)Math.Sqrt(1 - Math.Pow(_beta2, _step));
        float stepSize = (float)(_lr / bc1);
        var p = _p.AsSpan();
        var t = _tmp.AsSpan();
        TensorPrimitives.Multiply(p, (float)(1 - _lr * _wd), p);
        // m += (g - m) * (1 - beta1), as torch's lerp_.
        TensorPrimitives.Subtract(_g, _m, t);
        TensorPrimitives.MultiplyAdd(t, (float)(1 - _beta1), _m, _m);
        TensorPrimitives.Multiply(_v, (float)_beta2, _v);
        TensorPrimitives.Multiply(_g, _g, t);
        TensorPrimitives.MultiplyAdd(t, (float)(1 - _beta2), _v, _v);
        TensorPrimitives.Sqrt(_v, t);
        TensorPrimitives.Divide(t, bc2Sqrt, t);
        TensorPrimitives.Add(t, _eps, t);
        TensorPrimitives.Divide(_m, t, t);
        TensorPrimitives.MultiplyAdd(t, -stepSize, p, p);
    }
}

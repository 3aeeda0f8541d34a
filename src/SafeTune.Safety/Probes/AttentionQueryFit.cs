using SafeTune.Onnx;
using SafeTune.Safety.Activations;

namespace SafeTune.Safety.Probes;

/// <summary>Options of <see cref="AttentionQueryFit.Fit"/>.</summary>
public sealed record AttentionFitOptions
{
    /// <summary>Adam learning rate.</summary>
    public double LearningRate { get; init; } = 3e-3;
    /// <summary>L2 penalty on the query and the readout (added to the gradient).</summary>
    public double L2 { get; init; } = 1e-3;
    /// <summary>Prompts per step.</summary>
    public int BatchSize { get; init; } = 32;
    /// <summary>The most epochs run.</summary>
    public int MaxEpochs { get; init; } = 30;
    /// <summary>Early stopping: epochs without a lower validation loss before training stops.</summary>
    public int Patience { get; init; } = 4;
    /// <summary>The stratified share of the prompts held out to choose the stopping epoch (0: every epoch runs).</summary>
    public double ValidationFraction { get; init; } = 0.2;
    /// <summary>Seed of the validation split and the batch order.</summary>
    public int Seed { get; init; }
}

/// <summary>What <see cref="AttentionQueryFit.Fit"/> learned.</summary>
/// <param name="Query">The query in the raw activations' units (<see cref="ActivationOptions.AttentionQuery"/>).</param>
/// <param name="BestEpoch">The epoch whose query was kept (0: the zero query, mean pooling, was best).</param>
/// <param name="EpochsRun">Epochs run.</param>
/// <param name="TrainLoss">Mean training cross-entropy per epoch.</param>
/// <param name="ValidationLoss">Validation cross-entropy before training and after each epoch; empty without a validation split.</param>
public sealed record AttentionFit(float[] Query, int BestEpoch, int EpochsRun, IReadOnlyList<double> TrainLoss, IReadOnlyList<double> ValidationLoss);

/// <summary>
/// Fits the query of attention-weighted pooling (<see cref="AttentionPool"/>) as an attention probe: on token rows
/// standardised per feature (statistics over every training token), token t of a prompt gets the score q·z_t, the softmax
/// over the prompt's tokens gives weights a_t, and the logit of harm is v·(sum_t a_t z_t) + b. q, v and b minimise the mean
/// cross-entropy plus an L2 penalty, with Adam from zero (a zero query is mean pooling, so training starts from the mean
/// pooled probe); the query of the epoch with the lowest validation loss is kept. The readout v is then dropped: the probe's
/// own head is fitted on the pooled features. Deterministic for a seed.
/// </summary>
public static class AttentionQueryFit
{
    /// <summary>
    /// Fits a query on prompts given as token rows (<see cref="ActivationExtractor.ExtractTokenStates"/>): prompt i is
    /// <paramref name="tokens"/>[i], rows of <paramref name="features"/> floats; <paramref name="y"/> is true for harmful.
    /// </summary>
    /// <exception cref="UserInputException">The inputs are empty or inconsistent, a class is absent, a value is not finite, or an option is out of range.</exception>
    public static AttentionFit Fit(IReadOnlyList<float[]> tokens, int features, IReadOnlyList<bool> y, AttentionFitOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(tokens);
        ArgumentNullException.ThrowIfNull(y);
        var o = options ?? new AttentionFitOptions();
        if (o.BatchSize < 1 || o.MaxEpochs < 1 || o.Patience < 1) throw new UserInputException("batch size, epochs and patience must be at least 1");
        if (!(o.LearningRate > 0) || !(o.L2 >= 0) || !(o.ValidationFraction >= 0 && o.ValidationFraction < 1))
            throw new UserInputException("the learning rate must be positive, the L2 penalty non-negative and the validation fraction in [0, 1)");
        if (features < 1) throw new UserInputException("the token rows have no features");
        if (tokens.Count != y.Count) throw new UserInputException("the prompts and the labels differ in number");
        if (y.All(v => v) || y.All(v => !v)) throw new UserInputException("both classes must be present");
        for (int i = 0; i < tokens.Count; i++)
        {
            if (tokens[i].Length == 0 || tokens[i].Length % features != 0)
                throw new UserInputException($"prompt {i} has {tokens[i].Length} values, not a positive multiple of {features} features");
            foreach (var v in tokens[i])
                if (!float.IsFinite(v)) throw new UserInputException($"prompt {i} has a value that is not finite");
        }

        var rng = new Random(o.Seed);
        var (train, validation) = Splits.Stratified(y, o.ValidationFraction, rng);
        var model = new AttentionProbe(features, Statistics(tokens, train, features));
        var labels = y.Select(v => v ? 1.0 : 0.0).ToArray();
        var order = train.ToArray();
        var trainLoss = new List<double>();
        var valLoss = new List<double>();
        float[] best = model.RawQuery();
        double bestLoss = validation.Count > 0 ? model.Loss(tokens, labels, validation) : double.PositiveInfinity;
        if (validation.Count > 0) valLoss.Add(bestLoss);
        int bestEpoch = 0, epoch = 0;
        var adam = new Adam(model.Parameters.Length, o.LearningRate);
        while (epoch < o.MaxEpochs)
        {
            epoch++;
            for (int i = order.Length - 1; i > 0; i--)
            {
                int k = rng.Next(i + 1);
                (order[i], order[k]) = (order[k], order[i]);
            }
            double sum = 0;
            for (int start = 0; start < order.Length; start += o.BatchSize)
            {
                var batch = order.AsSpan(start, Math.Min(o.BatchSize, order.Length - start)).ToArray();
                sum += model.Gradient(tokens, labels, batch, o.L2) * batch.Length;
                adam.Step(model.Parameters, model.Gradients);
            }
            trainLoss.Add(sum / order.Length);
            if (validation.Count == 0) { best = model.RawQuery(); bestEpoch = epoch; continue; }
            double loss = model.Loss(tokens, labels, validation);
            valLoss.Add(loss);
            if (loss < bestLoss - 1e-4)
            {
                bestLoss = loss;
                bestEpoch = epoch;
                best = model.RawQuery();
            }
            else if (epoch - bestEpoch >= o.Patience) break;
        }
        return new AttentionFit(best, bestEpoch, epoch, trainLoss, valLoss);
    }

    // Per-feature mean and standard deviation over every token of the training prompts.
    private static (double[] Mean, double[] Std) Statistics(IReadOnlyList<float[]> tokens, IReadOnlyList<int> rows, int f)
    {
        var mean = new double[f];
        var sq = new double[f];
        long n = 0;
        foreach (var i in rows)
        {
            var x = tokens[i];
            for (int at = 0; at < x.Length; at += f, n++)
                for (int j = 0; j < f; j++) { double v = x[at + j]; mean[j] += v; sq[j] += v * v; }
        }
        var std = new double[f];
        for (int j = 0; j < f; j++)
        {
            mean[j] /= n;
            std[j] = Math.Max(Math.Sqrt(Math.Max(sq[j] / n - mean[j] * mean[j], 0)), Standardizer.StdFloor);
        }
        return (mean, std);
    }

    /// <summary>
    /// The attention probe over standardised tokens, kept in raw units: with z = (h - mean) / std, q·z_t differs from
    /// (q / std)·h_t by a constant the softmax ignores, and v·z̄ = (v / std)·h̄ - (v / std)·mean.
    /// Parameters [q (f), v (f), b].
    /// </summary>
    internal sealed class AttentionProbe(int f, (double[] Mean, double[] Std) stats)
    {
        public double[] Parameters { get; } = new double[2 * f + 1];
        public double[] Gradients { get; } = new double[2 * f + 1];

        public float[] RawQuery()
        {
            var q = new float[f];
            for (int j = 0; j < f; j++) q[j] = (float)(Parameters[j] / stats.Std[j]);
            return q;
        }

        /// <summary>The logit of one prompt, with its weights and the per-token readouts u_t = v·z_t when asked.</summary>
        public double Logit(float[] x, out double[] weights, out double[] readout)
        {
            int n = x.Length / f;
            var qRaw = new double[f];
            var vRaw = new double[f];
            double offset = 0;
            for (int j = 0; j < f; j++)
            {
                qRaw[j] = Parameters[j] / stats.Std[j];
                vRaw[j] = Parameters[f + j] / stats.Std[j];
                offset += vRaw[j] * stats.Mean[j];
            }
            var s = new double[n];
            readout = new double[n];
            double max = double.NegativeInfinity;
            for (int t = 0; t < n; t++)
            {
                double a = 0, u = -offset;
                for (int j = 0; j < f; j++) { double h = x[t * f + j]; a += qRaw[j] * h; u += vRaw[j] * h; }
                s[t] = a;
                readout[t] = u;
                if (a > max) max = a;
            }
            double sum = 0;
            for (int t = 0; t < n; t++) sum += s[t] = Math.Exp(s[t] - max);
            double logit = Parameters[2 * f];
            for (int t = 0; t < n; t++) logit += (s[t] /= sum) * readout[t];
            weights = s;
            return logit;
        }

        public double Loss(IReadOnlyList<float[]> tokens, double[] y, IReadOnlyList<int> rows)
        {
            var losses = new double[rows.Count];
            Parallel.For(0, rows.Count, r => losses[r] = CrossEntropy(Logit(tokens[rows[r]], out _, out _), y[rows[r]]));
            return losses.Sum() / rows.Count;
        }

        /// <summary>Fills <see cref="Gradients"/> with the gradient of the batch's mean loss plus the L2 penalty; returns the mean loss.</summary>
        public double Gradient(IReadOnlyList<float[]> tokens, double[] y, int[] batch, double l2)
        {
            var parts = new double[batch.Length][];
            var losses = new double[batch.Length];
            Parallel.For(0, batch.Length, r =>
            {
                var x = tokens[batch[r]];
                double logit = Logit(x, out var w, out var u);
                losses[r] = CrossEntropy(logit, y[batch[r]]);
                double g = LogisticRegression.Sigmoid(logit) - y[batch[r]];
                double ubar = 0;
                for (int t = 0; t < w.Length; t++) ubar += w[t] * u[t];
                // dlogit/dq_j = sum_t a_t (u_t - ubar) z_tj; the mean of z_t cancels, leaving h_tj / std_j.
                // dlogit/dv_j = sum_t a_t z_tj; dlogit/db = 1.
                var part = new double[2 * f + 1];
                for (int t = 0; t < w.Length; t++)
                {
                    double cq = g * w[t] * (u[t] - ubar), cv = g * w[t];
                    for (int j = 0; j < f; j++)
                    {
                        double h = x[t * f + j];
                        part[j] += cq * h;
                        part[f + j] += cv * h;
                    }
                }
                for (int j = 0; j < f; j++)
                {
                    part[j] /= stats.Std[j];
                    part[f + j] = (part[f + j] - g * stats.Mean[j]) / stats.Std[j];
                }
                part[2 * f] = g;
                parts[r] = part;
            });
            Array.Clear(Gradients);
            foreach (var part in parts)
                for (int k = 0; k < Gradients.Length; k++) Gradients[k] += part[k] / batch.Length;
            for (int k = 0; k < 2 * f; k++) Gradients[k] += l2 * Parameters[k];
            return losses.Sum() / batch.Length;
        }

        private static double CrossEntropy(double logit, double y) =>
            // log(1 + e^-l) for y = 1, log(1 + e^l) for y = 0, computed stably.
            Math.Max(y > 0.5 ? -logit : logit, 0) + Math.Log(1 + Math.Exp(-Math.Abs(logit)));
    }

    // Adam (no weight decay; the L2 penalty is in the gradient), in double.
    private sealed class Adam(int n, double lr)
    {
        private readonly double[] _m = new double[n], _v = new double[n];
        private int _t;

        public void Step(double[] p, double[] g)
        {
            _t++;
            double bc1 = 1 - Math.Pow(0.9, _t), bc2 = 1 - Math.Pow(0.999, _t);
            for (int k = 0; k < p.Length; k++)
            {
                _m[k] = 0.9 * _m[k] + 0.1 * g[k];
                _v[k] = 0.999 * _v[k] + 0.001 * g[k] * g[k];
                p[k] -= lr * (_m[k] / bc1) / (Math.Sqrt(_v[k] / bc2) + 1e-8);
            }
        }
    }
}

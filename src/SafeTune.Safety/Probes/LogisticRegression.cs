using System.Numerics;
using System.Runtime.InteropServices;
using SafeTune.Onnx;

namespace SafeTune.Safety.Probes;

/// <summary>The outcome of choosing the regularization strength of a <see cref="LogisticRegression"/> by cross-validation.</summary>
/// <param name="Model">The model refitted on all the data with <paramref name="BestLambda"/>.</param>
/// <param name="BestLambda">The lambda with the lowest mean validation log-loss (the larger one on an exact tie).</param>
/// <param name="Lambdas">The candidate lambdas, in the order given.</param>
/// <param name="MeanValidationLogLoss">For each candidate, the mean log-loss over all held-out examples of all folds.</param>
public sealed record CrossValidationResult(
    LogisticRegression Model, double BestLambda, IReadOnlyList<double> Lambdas, IReadOnlyList<double> MeanValidationLogLoss);

/// <summary>
/// L2-regularized logistic regression on standardized features with an unregularized intercept.
/// The fit minimizes J(w, b) = (1/n) sum_i logloss(y_i, w.z_i + b) + (lambda/2) |w|^2, where z are the features
/// standardized by <see cref="Standardizer"/>, using damped Newton steps (IRLS) from w = 0 and b = logit(mean y).
/// When d + 1 &lt;= n the (d+1)x(d+1) Newton system is solved by Cholesky. When d + 1 &gt; n the same Newton step is
/// computed exactly in n x n form: the weight block lambda I + Z'DZ is inverted with the Woodbury identity
/// (one Cholesky of lambda I + D^1/2 Z Z' D^1/2) and the intercept by block elimination. Both paths are
/// deterministic: same inputs on the same machine give bit-identical weights.
/// </summary>
public sealed class LogisticRegression : ProbeHead
{
    private const int MaxIterations = 100;
    private const double GradientTolerance = 1e-10;
    private readonly double[] _weights;

    /// <summary>Creates a model from stored parameters (for example when deserializing).</summary>
    /// <param name="standardizer">The feature standardization applied before the linear score.</param>
    /// <param name="weights">Weights on the standardized features.</param>
    /// <param name="bias">The intercept.</param>
    /// <param name="lambda">The L2 strength the model was fitted with (informational).</param>
    /// <exception cref="UserInputException">The weights do not match the standardizer's dimension or are not finite.</exception>
    public LogisticRegression(Standardizer standardizer, IReadOnlyList<double> weights, double bias, double lambda)
    {
        ArgumentNullException.ThrowIfNull(standardizer);
        ArgumentNullException.ThrowIfNull(weights);
        if (weights.Count != standardizer.Dimension)
            throw new UserInputException($"{weights.Count} weights for {standardizer.Dimension} features");
        if (!double.IsFinite(bias)) throw new UserInputException("the bias is not finite");
        _weights = [.. weights];
        if (_weights.Any(w => !double.IsFinite(w))) throw new UserInputException("a weight is not finite");
        Standardizer = standardizer;
        Bias = bias;
        Lambda = lambda;
    }

    /// <inheritdoc/>
    public override ProbeHeadKind Kind => ProbeHeadKind.Logistic;

    /// <summary>The feature standardization.</summary>
    public override Standardizer Standardizer { get; }

    /// <summary>Weights on the standardized features.</summary>
    public IReadOnlyList<double> Weights => _weights;

    /// <summary>The intercept.</summary>
    public double Bias { get; }

    /// <summary>The L2 strength used in the fit.</summary>
    public double Lambda { get; }

    /// <summary>The number of Newton iterations the fit took (0 for a model built from stored parameters).</summary>
    public int Iterations { get; private init; }

    /// <summary>Fits the model.</summary>
    /// <param name="x">Examples (rows of equal length).</param>
    /// <param name="y">Labels, true for the positive class.</param>
    /// <param name="lambda">The L2 strength, &gt; 0.</param>
    /// <exception cref="UserInputException">The inputs are empty or inconsistent, a class is absent, a value is not finite, or lambda &lt;= 0.</exception>
    public static LogisticRegression Fit(IReadOnlyList<float[]> x, IReadOnlyList<bool> y, double lambda)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(y);
        if (!(lambda > 0) || !double.IsFinite(lambda)) throw new UserInputException("lambda must be positive and finite");
        if (x.Count != y.Count) throw new UserInputException("x and y differ in length");
        if (x.Count == 0) throw new UserInputException("no examples");
        if (y.All(v => v) || y.All(v => !v)) throw new UserInputException("both classes must be present");
        foreach (var row in x)
            foreach (var v in row)
                if (!float.IsFinite(v)) throw new UserInputException("a feature is not finite");
        var standardizer = Standardizer.Fit(x);
        var z = new double[x.Count][];
        for (int i = 0; i < z.Length; i++) z[i] = standardizer.Transform(x[i]);
        var target = y.Select(v => v ? 1.0 : 0.0).ToArray();
        var (w, b, iterations) = Newton(z, target, lambda);
        return new LogisticRegression(standardizer, w, b, lambda) { Iterations = iterations };
    }

    /// <summary>
    /// Chooses lambda by k-fold cross-validation on mean validation log-loss, then refits on all data.
    /// Folds are stratified: each class's indices are shuffled with <see cref="Random"/> seeded by <paramref name="seed"/>
    /// and dealt round-robin to the folds; the standardizer is refitted inside each training fold.
    /// </summary>
    /// <param name="x">Examples.</param>
    /// <param name="y">Labels.</param>
    /// <param name="lambdas">Candidate L2 strengths, each &gt; 0.</param>
    /// <param name="folds">The number of folds, at least 2 and at most the size of the smaller class.</param>
    /// <param name="seed">Seed of the fold split.</param>
    /// <exception cref="UserInputException">No candidate, a bad fold count, or inputs <see cref="Fit"/> rejects.</exception>
    public static CrossValidationResult FitWithCrossValidation(
        IReadOnlyList<float[]> x, IReadOnlyList<bool> y, IReadOnlyList<double> lambdas, int folds = 5, int seed = 0)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(y);
        ArgumentNullException.ThrowIfNull(lambdas);
        if (lambdas.Count == 0) throw new UserInputException("no candidate lambda");
        if (x.Count != y.Count) throw new UserInputException("x and y differ in length");
        int positives = y.Count(v => v), negatives = y.Count - positives;
        if (folds < 2 || folds > Math.Min(positives, negatives))
            throw new UserInputException($"folds must lie in [2, {Math.Min(positives, negatives)}] (the smaller class size)");
        var fold = AssignFolds(y, folds, seed);
        var losses = new double[lambdas.Count];
        for (int c = 0; c < lambdas.Count; c++)
        {
            double total = 0;
            for (int f = 0; f < folds; f++)
            {
                var trainX = new List<float[]>();
                var trainY = new List<bool>();
                for (int i = 0; i < x.Count; i++)
                    if (fold[i] != f) { trainX.Add(x[i]); trainY.Add(y[i]); }
                var model = Fit(trainX, trainY, lambdas[c]);
                for (int i = 0; i < x.Count; i++)
                    if (fold[i] == f) total += LogLoss(model.PredictLogit(x[i]), y[i] ? 1 : 0);
            }
            losses[c] = total / x.Count;
        }
        int best = 0;
        for (int c = 1; c < lambdas.Count; c++)
            if (losses[c] < losses[best] || (losses[c] == losses[best] && lambdas[c] > lambdas[best])) best = c;
        return new CrossValidationResult(Fit(x, y, lambdas[best]), lambdas[best], [.. lambdas], losses);
    }

    /// <summary>The linear score (log-odds of the positive class) of one example.</summary>
    /// <param name="x">Raw features.</param>
    /// <exception cref="UserInputException">The length differs from <see cref="ProbeHead.Dimension"/>.</exception>
    public override double PredictLogit(ReadOnlySpan<float> x)
    {
        if (x.Length != _weights.Length) throw new UserInputException($"expected {_weights.Length} features, got {x.Length}");
        double s = Bias;
        var mean = Standardizer.Mean;
        var std = Standardizer.Std;
        for (int j = 0; j < x.Length; j++) s += _weights[j] * ((x[j] - mean[j]) / std[j]);
        return s;
    }

    /// <summary>The logistic function, computed without overflow.</summary>
    /// <param name="t">The log-odds.</param>
    public static double Sigmoid(double t) => t >= 0 ? 1 / (1 + Math.Exp(-t)) : Math.Exp(t) / (1 + Math.Exp(t));

    private static double LogLoss(double logit, double y) =>
        Math.Max(logit, 0) + double.LogP1(Math.Exp(-Math.Abs(logit))) - y * logit;

    private static int[] AssignFolds(IReadOnlyList<bool> y, int folds, int seed)
    {
        var rng = new Random(seed);
        var fold = new int[y.Count];
        int dealt = 0;
        foreach (var cls in new[] { true, false })
        {
            var idx = Enumerable.Range(0, y.Count).Where(i => y[i] == cls).ToArray();
            for (int i = idx.Length - 1; i > 0; i--)
            {
                int k = rng.Next(i + 1);
                (idx[i], idx[k]) = (idx[k], idx[i]);
            }
            foreach (var i in idx) fold[i] = dealt++ % folds;
        }
        return fold;
    }

    private static double Objective(double[][] z, double[] y, double[] w, double b, double lambda)
    {
        double s = 0;
        for (int i = 0; i < z.Length; i++) s += LogLoss(Dot(z[i], w) + b, y[i]);
        return s / z.Length + 0.5 * lambda * Dot(w, w);
    }

    private static (double[] W, double B, int Iterations) Newton(double[][] z, double[] y, double lambda)
    {
        int n = z.Length, d = z[0].Length;
        var w = new double[d];
        double mean = y.Average();
        double b = Math.Log(mean / (1 - mean));
        bool primal = d + 1 <= n;
        double[][]? zt = null;
        double[]? kernel = null;
        if (primal)
        {
            zt = new double[d][];
            for (int j = 0; j < d; j++)
            {
                zt[j] = new double[n];
                for (int i = 0; i < n; i++) zt[j][i] = z[i][j];
            }
        }
        else
        {
            kernel = new double[n * n];
            Parallel.For(0, n, i =>
            {
                for (int k = 0; k <= i; k++) kernel[i * n + k] = kernel[k * n + i] = Dot(z[i], z[k]);
            });
        }
        var p = new double[n];
        var r = new double[n];
        var dd = new double[n];
        double objective = Objective(z, y, w, b, lambda);
        int iter = 0;
        for (; iter < MaxIterations; iter++)
        {
            for (int i = 0; i < n; i++)
            {
                p[i] = Sigmoid(Dot(z[i], w) + b);
                r[i] = (p[i] - y[i]) / n;
                dd[i] = p[i] * (1 - p[i]) / n;
            }
            var gw = new double[d];
            for (int i = 0; i < n; i++) Axpy(r[i], z[i], gw);
            for (int j = 0; j < d; j++) gw[j] += lambda * w[j];
            double gb = r.Sum();
            double gmax = Math.Abs(gb);
            foreach (var g in gw) gmax = Math.Max(gmax, Math.Abs(g));
            if (gmax < GradientTolerance) break;

            var (stepW, stepB) = primal
                ? PrimalStep(zt!, dd, gw, gb, lambda)
                : WoodburyStep(z, kernel!, dd, gw, gb, lambda);

            // Backtracking line search on the objective (Armijo condition).
            double slope = Dot(gw, stepW) + gb * stepB;
            double t = 1;
            var wNew = new double[d];
            double bNew = b, objNew = objective;
            bool accepted = false;
            for (int h = 0; h < 60; h++, t *= 0.5)
            {
                for (int j = 0; j < d; j++) wNew[j] = w[j] + t * stepW[j];
                bNew = b + t * stepB;
                objNew = Objective(z, y, wNew, bNew, lambda);
                if (objNew <= objective + 1e-4 * t * slope) { accepted = true; break; }
            }
            if (!accepted) break; // no further decrease is representable
            w = wNew;
            b = bNew;
            objective = objNew;
            if (-slope < 1e-24) { iter++; break; }
        }
        return (w, b, iter);
    }

    /// <summary>Solves the full (d+1)x(d+1) Newton system H s = -g by Cholesky.</summary>
    private static (double[] W, double B) PrimalStep(double[][] zt, double[] dd, double[] gw, double gb, double lambda)
    {
        int d = zt.Length, n = dd.Length, m = d + 1;
        var h = new double[m * m];
        var weighted = new double[d][];
        Parallel.For(0, d, j =>
        {
            var row = new double[n];
            for (int i = 0; i < n; i++) row[i] = zt[j][i] * dd[i];
            weighted[j] = row;
        });
        Parallel.For(0, d, j =>
        {
            for (int k = 0; k <= j; k++) h[j * m + k] = Dot(weighted[j], zt[k]);
            h[j * m + j] += lambda;
            double c = 0;
            for (int i = 0; i < n; i++) c += weighted[j][i];
            h[d * m + j] = c;
        });
        h[d * m + d] = dd.Sum() + 1e-12;
        CholeskyInPlace(h, m);
        var rhs = new double[m];
        for (int j = 0; j < d; j++) rhs[j] = -gw[j];
        rhs[d] = -gb;
        CholeskySolve(h, m, rhs);
        return (rhs[..d], rhs[d]);
    }

    /// <summary>
    /// The same Newton step when d + 1 &gt; n: A = lambda I + Z'DZ is applied inverse through Woodbury,
    /// A^-1 v = (v - Z'E M^-1 E Z v) / lambda with E = D^1/2 and M = lambda I + E Z Z' E, and the intercept by block elimination.
    /// </summary>
    private static (double[] W, double B) WoodburyStep(double[][] z, double[] kernel, double[] dd, double[] gw, double gb, double lambda)
    {
        int n = z.Length, d = z[0].Length;
        var e = new double[n];
        for (int i = 0; i < n; i++) e[i] = Math.Sqrt(dd[i]);
        var m = new double[n * n];
        for (int i = 0; i < n; i++)
        {
            for (int k = 0; k <= i; k++) m[i * n + k] = e[i] * kernel[i * n + k] * e[k];
            m[i * n + i] += lambda;
        }
        CholeskyInPlace(m, n);

        double[] ApplyInverse(double[] v)
        {
            var ev = new double[n];
            for (int i = 0; i < n; i++) ev[i] = e[i] * Dot(z[i], v);
            CholeskySolve(m, n, ev);
            var result = (double[])v.Clone();
            for (int i = 0; i < n; i++) Axpy(-e[i] * ev[i], z[i], result);
            for (int j = 0; j < d; j++) result[j] /= lambda;
            return result;
        }

        var c = new double[d];
        for (int i = 0; i < n; i++) Axpy(dd[i], z[i], c);
        double s = dd.Sum() + 1e-12;
        var u = ApplyInverse(gw);
        var v = ApplyInverse(c);
        double schur = s - Dot(c, v);
        double stepB = (-gb + Dot(c, u)) / Math.Max(schur, 1e-300);
        var stepW = new double[d];
        for (int j = 0; j < d; j++) stepW[j] = -u[j] - v[j] * stepB;
        return (stepW, stepB);
    }

    /// <summary>Lower Cholesky factor of the symmetric positive-definite matrix whose lower triangle is in <paramref name="a"/> (row-major m x m), in place.</summary>
    internal static void CholeskyInPlace(double[] a, int m)
    {
        for (int j = 0; j < m; j++)
        {
            var rowJ = a.AsSpan(j * m, j);
            double diag = a[j * m + j] - Dot(rowJ, rowJ);
            if (!(diag > 0)) throw new InvalidOperationException($"matrix is not positive definite (pivot {j} = {diag})");
            double ljj = Math.Sqrt(diag);
            a[j * m + j] = ljj;
            int jj = j;
            void Column(int i)
            {
                a[i * m + jj] = (a[i * m + jj] - Dot(a.AsSpan(i * m, jj), a.AsSpan(jj * m, jj))) / ljj;
            }
            if ((long)(m - j) * j > 200_000) Parallel.For(j + 1, m, Column);
            else for (int i = j + 1; i < m; i++) Column(i);
        }
    }

    /// <summary>Solves L L' x = b in place given the factor from <see cref="CholeskyInPlace"/>.</summary>
    internal static void CholeskySolve(double[] l, int m, double[] b)
    {
        for (int i = 0; i < m; i++)
            b[i] = (b[i] - Dot(l.AsSpan(i * m, i), b.AsSpan(0, i))) / l[i * m + i];
        for (int i = m - 1; i >= 0; i--)
        {
            double s = b[i];
            for (int k = i + 1; k < m; k++) s -= l[k * m + i] * b[k];
            b[i] = s / l[i * m + i];
        }
    }

    private static void Axpy(double alpha, double[] x, double[] y)
    {
        for (int j = 0; j < x.Length; j++) y[j] += alpha * x[j];
    }

    private static double Dot(ReadOnlySpan<double> a, ReadOnlySpan<double> b)
    {
        int i = 0;
        double s = 0;
        if (Vector.IsHardwareAccelerated && a.Length >= Vector<double>.Count)
        {
            var va = MemoryMarshal.Cast<double, Vector<double>>(a);
            var vb = MemoryMarshal.Cast<double, Vector<double>>(b[..a.Length]);
            var acc = Vector<double>.Zero;
            for (int k = 0; k < va.Length; k++) acc += va[k] * vb[k];
            s = Vector.Sum(acc);
            i = va.Length * Vector<double>.Count;
        }
        for (; i < a.Length; i++) s += a[i] * b[i];
        return s;
    }
}

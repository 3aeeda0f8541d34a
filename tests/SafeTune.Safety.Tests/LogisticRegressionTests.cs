using SafeTune.Onnx;
using SafeTune.Safety.Metrics;
using SafeTune.Safety.Probes;

namespace SafeTune.Safety.Tests;

public class LogisticRegressionTests
{
    private static double Gaussian(Random rng) =>
        Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());

    /// <summary>Rows with a linear signal of strength <paramref name="signal"/> on the first features, labels drawn from a logistic model.</summary>
    private static (float[][] X, bool[] Y) Problem(int n, int d, double signal, int seed)
    {
        var rng = new Random(seed);
        var x = new float[n][];
        var y = new bool[n];
        for (int i = 0; i < n; i++)
        {
            x[i] = new float[d];
            for (int j = 0; j < d; j++) x[i][j] = (float)(Gaussian(rng) * (1 + j % 3) + j);
            double t = 0.3;
            for (int j = 0; j < Math.Min(d, 3); j++) t += signal * (x[i][j] - j) / (1 + j % 3) * (j % 2 == 0 ? 1 : -1);
            y[i] = rng.NextDouble() < 1 / (1 + Math.Exp(-t));
        }
        return (x, y);
    }

    /// <summary>Plain gradient descent on the same objective: mean log-loss + lambda/2 |w|^2 over standardized features.</summary>
    private static (double[] W, double B) GradientDescentReference(float[][] x, bool[] y, double lambda)
    {
        var st = Standardizer.Fit(x);
        var z = x.Select(r => st.Transform(r)).ToArray();
        int n = z.Length, d = z[0].Length;
        var w = new double[d];
        double b = 0;
        double trace = z.Sum(r => r.Sum(v => v * v)) / n + 1;
        double step = 1 / (0.25 * trace + lambda);
        for (int it = 0; it < 2_000_000; it++)
        {
            var gw = new double[d];
            double gb = 0;
            for (int i = 0; i < n; i++)
            {
                double f = b;
                for (int j = 0; j < d; j++) f += w[j] * z[i][j];
                double r = (1 / (1 + Math.Exp(-f)) - (y[i] ? 1 : 0)) / n;
                gb += r;
                for (int j = 0; j < d; j++) gw[j] += r * z[i][j];
            }
            double g2 = gb * gb;
            for (int j = 0; j < d; j++) { gw[j] += lambda * w[j]; g2 += gw[j] * gw[j]; }
            if (g2 < 1e-26) break;
            for (int j = 0; j < d; j++) w[j] -= step * gw[j];
            b -= step * gb;
        }
        return (w, b);
    }

    [Fact]
    public void SeparableToySetGetsAurocOne()
    {
        var rng = new Random(1);
        var x = new List<float[]>();
        var y = new List<bool>();
        for (int i = 0; i < 40; i++)
        {
            bool pos = i % 2 == 0;
            x.Add([(float)((pos ? 2 : -2) + 0.5 * Gaussian(rng)), (float)((pos ? 1 : -1) + 0.5 * Gaussian(rng))]);
            y.Add(pos);
        }
        var model = LogisticRegression.Fit(x, y, 1e-3);
        var p = model.PredictProbability(x);
        Assert.Equal(1.0, BinaryMetrics.Auroc(p, y.ToArray()));
        Assert.True(model.PredictProbability([3f, 1.5f]) > 0.99);
        Assert.True(model.PredictProbability([-3f, -1.5f]) < 0.01);
    }

    [Theory]
    [InlineData(200, 5, 0.1)]   // primal Cholesky path (d + 1 <= n)
    [InlineData(20, 50, 0.5)]   // Woodbury path (d + 1 > n)
    [InlineData(60, 59, 0.05)]  // boundary: d + 1 = n
    public void MatchesGradientDescentReference(int n, int d, double lambda)
    {
        var (x, y) = Problem(n, d, 1.0, seed: n + d);
        var model = LogisticRegression.Fit(x, y, lambda);
        var (w, b) = GradientDescentReference(x, y, lambda);
        Assert.Equal(b, model.Bias, 1e-6);
        for (int j = 0; j < d; j++) Assert.Equal(w[j], model.Weights[j], 1e-6);
    }

    [Theory]
    [InlineData(256, 4096, 0.01)] // Woodbury path at probe width
    [InlineData(600, 300, 0.001)] // primal path
    public void SolutionIsStationaryAtScale(int n, int d, double lambda)
    {
        var (x, y) = Problem(n, d, 1.0, seed: 21);
        var model = LogisticRegression.Fit(x, y, lambda);
        var z = x.Select(r => model.Standardizer.Transform(r)).ToArray();
        var gw = model.Weights.Select(w => lambda * w).ToArray();
        double gb = 0;
        for (int i = 0; i < n; i++)
        {
            double r = (model.PredictProbability(x[i]) - (y[i] ? 1 : 0)) / n;
            gb += r;
            for (int j = 0; j < d; j++) gw[j] += r * z[i][j];
        }
        Assert.True(Math.Abs(gb) < 1e-9, $"intercept gradient {gb}");
        Assert.True(gw.Max(Math.Abs) < 1e-9, $"weight gradient {gw.Max(Math.Abs)}");
        Assert.InRange(model.Iterations, 1, 100);
    }

    [Fact]
    public void CrossValidationRegularizesNoisySmallProblemsMore()
    {
        double[] lambdas = [1e-4, 1e-3, 1e-2, 1e-1, 1, 10];
        var (xs, ys) = Problem(30, 20, 0.3, seed: 11);
        var (xl, yl) = Problem(2000, 5, 3.0, seed: 12);
        var noisy = LogisticRegression.FitWithCrossValidation(xs, ys, lambdas, folds: 5, seed: 1);
        var clean = LogisticRegression.FitWithCrossValidation(xl, yl, lambdas, folds: 5, seed: 1);
        Assert.True(noisy.BestLambda > clean.BestLambda, $"noisy {noisy.BestLambda} clean {clean.BestLambda}");
        Assert.Equal(lambdas.Length, clean.MeanValidationLogLoss.Count);
        Assert.Equal(clean.BestLambda, clean.Model.Lambda);
        int best = Array.IndexOf(lambdas, clean.BestLambda);
        Assert.Equal(clean.MeanValidationLogLoss.Min(), clean.MeanValidationLogLoss[best]);
    }

    [Theory]
    [InlineData(150, 8)]
    [InlineData(30, 100)]
    public void FitIsBitIdenticalAcrossRuns(int n, int d)
    {
        var (x, y) = Problem(n, d, 1.0, seed: 7);
        var a = LogisticRegression.Fit(x, y, 0.01);
        var b = LogisticRegression.Fit(x, y, 0.01);
        Assert.Equal(BitConverter.DoubleToInt64Bits(a.Bias), BitConverter.DoubleToInt64Bits(b.Bias));
        Assert.Equal(a.Weights.Select(BitConverter.DoubleToInt64Bits), b.Weights.Select(BitConverter.DoubleToInt64Bits));
        var ca = LogisticRegression.FitWithCrossValidation(x, y, [0.01, 0.1, 1], seed: 3);
        var cb = LogisticRegression.FitWithCrossValidation(x, y, [0.01, 0.1, 1], seed: 3);
        Assert.Equal(ca.MeanValidationLogLoss, cb.MeanValidationLogLoss);
        Assert.Equal(ca.Model.Weights, cb.Model.Weights);
    }

    [Fact]
    public void StoredParametersReproducePredictions()
    {
        var (x, y) = Problem(100, 6, 1.0, seed: 9);
        var model = LogisticRegression.Fit(x, y, 0.05);
        var copy = new LogisticRegression(
            new Standardizer(model.Standardizer.Mean.ToArray(), model.Standardizer.Std.ToArray()),
            model.Weights.ToArray(), model.Bias, model.Lambda);
        var batch = model.PredictProbability(x);
        for (int i = 0; i < x.Length; i++)
        {
            Assert.Equal(batch[i], model.PredictProbability(x[i]));
            Assert.Equal(batch[i], copy.PredictProbability(x[i]));
        }
    }

    [Fact]
    public void StandardizerFloorsConstantFeatures()
    {
        var st = Standardizer.Fit([[1f, 5f], [3f, 5f]]);
        Assert.Equal([2.0, 5.0], st.Mean);
        Assert.Equal(1.0, st.Std[0]);
        Assert.Equal(Standardizer.StdFloor, st.Std[1]);
        Assert.Equal([1.0, 0.0], st.Transform([3f, 5f]));
        // A constant feature does not stop the fit.
        var model = LogisticRegression.Fit([[0f, 1f], [1f, 1f], [2f, 1f], [3f, 1f]], [false, true, false, true], 0.1);
        Assert.True(double.IsFinite(model.Bias));
    }

    [Fact]
    public void RejectsBadInput()
    {
        float[][] x = [[0f], [1f]];
        Assert.Throws<UserInputException>(() => LogisticRegression.Fit(x, [true, true], 0.1));
        Assert.Throws<UserInputException>(() => LogisticRegression.Fit(x, [true, false], 0));
        Assert.Throws<UserInputException>(() => LogisticRegression.FitWithCrossValidation(x, [true, false], [0.1], folds: 2));
        var model = LogisticRegression.Fit(x, [false, true], 0.1);
        Assert.Throws<UserInputException>(() => model.PredictProbability([1f, 2f]));
    }
}

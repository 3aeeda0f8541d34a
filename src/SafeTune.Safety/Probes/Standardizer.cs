using SafeTune.Onnx;

namespace SafeTune.Safety.Probes;

/// <summary>Per-feature standardization z = (x - mean) / std, with std floored at <see cref="StdFloor"/>.</summary>
public sealed class Standardizer
{
    /// <summary>The smallest standard deviation used, so that constant features do not divide by zero.</summary>
    public const double StdFloor = 1e-6;

    private readonly double[] _mean;
    private readonly double[] _std;

    /// <summary>Creates a standardizer from stored statistics (for example when deserializing).</summary>
    /// <param name="mean">Per-feature means.</param>
    /// <param name="std">Per-feature standard deviations; values below <see cref="StdFloor"/> are raised to it.</param>
    /// <exception cref="UserInputException">The lengths differ or a value is not finite.</exception>
    public Standardizer(IReadOnlyList<double> mean, IReadOnlyList<double> std)
    {
        ArgumentNullException.ThrowIfNull(mean);
        ArgumentNullException.ThrowIfNull(std);
        if (mean.Count != std.Count) throw new UserInputException("mean and std differ in length");
        _mean = new double[mean.Count];
        _std = new double[std.Count];
        for (int j = 0; j < _mean.Length; j++)
        {
            if (!double.IsFinite(mean[j]) || !double.IsFinite(std[j])) throw new UserInputException($"feature {j} has a non-finite statistic");
            _mean[j] = mean[j];
            _std[j] = Math.Max(std[j], StdFloor);
        }
    }

    /// <summary>The number of features.</summary>
    public int Dimension => _mean.Length;

    /// <summary>Per-feature means.</summary>
    public IReadOnlyList<double> Mean => _mean;

    /// <summary>Per-feature standard deviations (population, floored at <see cref="StdFloor"/>).</summary>
    public IReadOnlyList<double> Std => _std;

    /// <summary>Computes the per-feature mean and population standard deviation of the rows.</summary>
    /// <param name="rows">Examples, all of the same length.</param>
    /// <exception cref="UserInputException">There are no rows or they differ in length.</exception>
    public static Standardizer Fit(IReadOnlyList<float[]> rows)
    {
        ArgumentNullException.ThrowIfNull(rows);
        if (rows.Count == 0) throw new UserInputException("no rows");
        int d = rows[0].Length;
        var mean = new double[d];
        foreach (var r in rows)
        {
            if (r.Length != d) throw new UserInputException("rows differ in length");
            for (int j = 0; j < d; j++) mean[j] += r[j];
        }
        for (int j = 0; j < d; j++) mean[j] /= rows.Count;
        var var = new double[d];
        foreach (var r in rows)
            for (int j = 0; j < d; j++) { double t = r[j] - mean[j]; var[j] += t * t; }
        for (int j = 0; j < d; j++) var[j] = Math.Sqrt(var[j] / rows.Count);
        return new Standardizer(mean, var);
    }

    /// <summary>Writes the standardized features of <paramref name="x"/> into <paramref name="z"/>.</summary>
    /// <param name="x">Raw features.</param>
    /// <param name="z">Destination, of the same length.</param>
    /// <exception cref="UserInputException">A length differs from <see cref="Dimension"/>.</exception>
    public void Transform(ReadOnlySpan<float> x, Span<double> z)
    {
        if (x.Length != _mean.Length || z.Length != _mean.Length)
            throw new UserInputException($"expected {_mean.Length} features, got {x.Length}");
        for (int j = 0; j < x.Length; j++) z[j] = (x[j] - _mean[j]) / _std[j];
    }

    /// <summary>Returns the standardized features of <paramref name="x"/>.</summary>
    /// <param name="x">Raw features.</param>
    public double[] Transform(ReadOnlySpan<float> x)
    {
        var z = new double[x.Length];
        Transform(x, z);
        return z;
    }
}

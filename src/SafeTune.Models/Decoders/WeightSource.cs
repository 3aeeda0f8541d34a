using SafeTune.Onnx;

namespace SafeTune.Models.Decoders;

/// <summary>Supplies weights by Hub name: from a given set (checked for shape), or drawn deterministically from a seed.</summary>
internal sealed class WeightSource(IReadOnlyDictionary<string, TensorData>? given, int seed)
{
    private readonly Random _random = new(seed);

    /// <summary>A matrix or vector, N(0, 0.02) when not given.</summary>
    public TensorData Get(string name, params long[] dims) => Given(name, dims) ?? Draw(name, dims, 0f, 0.02f);

    /// <summary>A norm weight, ones when not given.</summary>
    public TensorData Ones(string name, long size) =>
        Given(name, [size]) ?? TensorData.Create<float>(name, [size], Enumerable.Repeat(1f, (int)size).ToArray());

    private TensorData? Given(string name, long[] dims)
    {
        if (given is null) return null;
        if (!given.TryGetValue(name, out var t))
            throw new KeyNotFoundException($"weight '{name}' is missing.");
        if (!t.Dims.SequenceEqual(dims))
            throw new UserInputException($"weight '{name}' has shape [{string.Join(", ", t.Dims)}], expected [{string.Join(", ", dims)}].");
        if (t.ElementType != ElementType.Float)
            throw new UserInputException($"weight '{name}' is {t.ElementType.OnnxName()}, expected float.");
        return t.WithName(name);
    }

    private TensorData Draw(string name, long[] dims, float mean, float std)
    {
        long n = dims.Aggregate(1L, (p, x) => p * x);
        var values = new float[n];
        for (long i = 0; i < n; i += 2)
        {
            // Box-Muller: two normals from two uniforms.
            double u1 = 1.0 - _random.NextDouble(), u2 = _random.NextDouble();
            double r = Math.Sqrt(-2.0 * Math.Log(u1));
            values[i] = mean + std * (float)(r * Math.Cos(2 * Math.PI * u2));
            if (i + 1 < n) values[i + 1] = mean + std * (float)(r * Math.Sin(2 * Math.PI * u2));
        }
        return TensorData.Create<float>(name, dims, values);
    }
}

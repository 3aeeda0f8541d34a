using Microsoft.ML.OnnxRuntime;

namespace SafeTune.Tests.Common;

/// <summary>One output of a run, copied out of ONNX Runtime.</summary>
public sealed record FloatTensor(float[] Data, long[] Shape);

/// <summary>Runs sessions with plain OrtValue inputs and copies the float outputs out.</summary>
public static class OrtRun
{
    /// <summary>Runs a decoder on <c>input_ids</c> of shape [batch, sequence]; returns every float output by name.</summary>
    public static Dictionary<string, FloatTensor> Ids(InferenceSession session, long[] ids, long batch, long sequence) =>
        Inputs(session, new Dictionary<string, (long[] Data, long[] Shape)> { ["input_ids"] = (ids, [batch, sequence]) });

    /// <summary>Runs with int64 inputs; returns every float output by name.</summary>
    public static Dictionary<string, FloatTensor> Inputs(InferenceSession session, IReadOnlyDictionary<string, (long[] Data, long[] Shape)> inputs)
    {
        var names = inputs.Keys.ToArray();
        var values = names.Select(n => OrtValue.CreateTensorValueFromMemory(inputs[n].Data, inputs[n].Shape)).ToArray();
        try
        {
            using var options = new RunOptions();
            using var outputs = session.Run(options, names, values, session.OutputNames);
            var result = new Dictionary<string, FloatTensor>(StringComparer.Ordinal);
            for (int i = 0; i < outputs.Count; i++)
            {
                var v = outputs[i];
                result[session.OutputNames[i]] = new FloatTensor(v.GetTensorDataAsSpan<float>().ToArray(), v.GetTensorTypeAndShape().Shape);
            }
            return result;
        }
        finally
        {
            foreach (var v in values) v.Dispose();
        }
    }

    /// <summary>The largest absolute difference of two equally long arrays (throws on a length mismatch).</summary>
    public static double MaxAbsDiff(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        Assert.Equal(a.Length, b.Length);
        double m = 0;
        for (int i = 0; i < a.Length; i++)
        {
            double d = Math.Abs((double)a[i] - b[i]);
            if (double.IsNaN(d)) return double.PositiveInfinity;
            if (d > m) m = d;
        }
        return m;
    }

    /// <summary>True when both arrays hold the same bits.</summary>
    public static bool BitEqual(float[] a, float[] b) =>
        a.Length == b.Length && System.Runtime.InteropServices.MemoryMarshal.AsBytes(a.AsSpan()).SequenceEqual(System.Runtime.InteropServices.MemoryMarshal.AsBytes(b.AsSpan()));

    /// <summary>Deterministic token ids in [0, vocab).</summary>
    public static long[] RandomIds(int seed, long count, int vocab)
    {
        var r = new Random(seed);
        var ids = new long[count];
        for (long i = 0; i < count; i++) ids[i] = r.Next(vocab);
        return ids;
    }
}

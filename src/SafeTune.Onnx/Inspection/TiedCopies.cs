using System.Runtime.InteropServices;

namespace SafeTune.Onnx.Inspection;

/// <summary>An initializer that holds exactly the values of another one, as it is or transposed.</summary>
/// <param name="Kept">The initializer that stays (the one with the module's own name where there is one).</param>
/// <param name="Copy">The duplicate.</param>
/// <param name="Transposed">True when <c>Copy</c> is the transpose of <c>Kept</c> (a 2-D matrix).</param>
public sealed record TiedCopy(string Kept, string Copy, bool Transposed);

/// <summary>
/// Finds tied weights that an export stored twice. With constant folding, torch.onnx stores a tied language-model head
/// as a transposed copy of the token embedding; training the two apart leaves the tied model's trajectory after one step.
/// Candidates are float32 initializers of equal dims (or reversed 2-D dims) whose contents are not all one value (fresh
/// ones and zeros are equal by chance, not by tying); a permutation-invariant fingerprint picks the pairs worth comparing
/// element by element.
/// </summary>
public static class TiedCopies
{
    /// <summary>The copies among <paramref name="names"/> (initializers of the main graph), each tied to the first of its group.</summary>
    public static IReadOnlyList<TiedCopy> Find(Model model, IEnumerable<string> names)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(names);
        var candidates = names.Select(n => model.Graph.FindInitializer(n))
            .Where(v => v is not null && !v.IsGraphInput && v.Initializer!.ElementType == ElementType.Float && v.Initializer.Dims.Length >= 1
                && v.Initializer.ElementCount > 1)
            .Select(v => v!.Initializer!)
            .ToList();
        var groups = candidates.GroupBy(t => (Fingerprint(t), string.Join("x", t.Dims.Order()))).Where(g => g.Count() > 1);
        var ties = new List<TiedCopy>();
        foreach (var group in groups)
        {
            // The kept tensor: a module name rather than a generated onnx::* one, then initializer order.
            var ordered = group.OrderBy(t => t.Name.StartsWith("onnx::", StringComparison.Ordinal) ? 1 : 0).ToList();
            var tied = new HashSet<string>(StringComparer.Ordinal);
            for (int i = 0; i < ordered.Count; i++)
            {
                if (tied.Contains(ordered[i].Name) || IsConstant(ordered[i])) continue;
                for (int j = i + 1; j < ordered.Count; j++)
                {
                    if (tied.Contains(ordered[j].Name)) continue;
                    if (Compare(ordered[i], ordered[j]) is { } transposed)
                    {
                        ties.Add(new TiedCopy(ordered[i].Name, ordered[j].Name, transposed));
                        tied.Add(ordered[j].Name);
                    }
                }
            }
        }
        return ties;
    }

    /// <summary>Null when the tensors differ; else whether <paramref name="b"/> is the transpose of <paramref name="a"/>.</summary>
    private static bool? Compare(TensorData a, TensorData b)
    {
        var x = MemoryMarshal.Cast<float, uint>(a.AsSpan<float>());
        var y = MemoryMarshal.Cast<float, uint>(b.AsSpan<float>());
        if (a.Dims.SequenceEqual(b.Dims) && x.SequenceEqual(y)) return false;
        if (a.Dims.Length != 2 || b.Dims.Length != 2 || a.Dims[0] != b.Dims[1] || a.Dims[1] != b.Dims[0]) return null;
        long rows = a.Dims[0], cols = a.Dims[1];
        for (long r = 0; r < rows; r++)
            for (long c = 0; c < cols; c++)
                if (x[(int)(r * cols + c)] != y[(int)(c * rows + r)]) return null;
        return true;
    }

    private static bool IsConstant(TensorData t)
    {
        var x = MemoryMarshal.Cast<float, uint>(t.AsSpan<float>());
        return x.IndexOfAnyExcept(x[0]) < 0;
    }

    /// <summary>Sums of the bit patterns and of their squares (mod 2^64): equal for a tensor and any permutation of it.</summary>
    private static (ulong, ulong) Fingerprint(TensorData t)
    {
        ulong sum = 0, squares = 0;
        foreach (uint u in MemoryMarshal.Cast<float, uint>(t.AsSpan<float>()))
        {
            sum += u;
            squares += (ulong)u * u;
        }
        return (sum, squares);
    }
}

using System.Globalization;
using System.Text.RegularExpressions;
using SafeTune.Data;
using SafeTune.Onnx;

namespace SafeTune.Training.Data;

/// <summary>How many rows of a file a <see cref="DatasetPart"/> takes.</summary>
internal enum SampleKind
{
    /// <summary>Every row.</summary>
    All,
    /// <summary>The first N rows, in file order (<c>FILE:N</c>).</summary>
    First,
    /// <summary>A seeded random share of the rows (<c>FILE*0.1</c>).</summary>
    Fraction,
    /// <summary>N rows drawn at random, seeded (<c>FILE*300</c>).</summary>
    Count,
}

/// <summary>
/// One file of a <see cref="DatasetMix"/>, written <c>PATH[@FIELD=VALUE]...[:N | *P | *N]</c>: <c>:N</c> takes the first N
/// rows, <c>*P</c> with P in (0, 1] a random share P of the rows, <c>*N</c> with a whole N &gt; 1 N random rows. Row
/// filters apply before sampling. Random samples are seeded by the mix's seed and the part's index, and keep file order.
/// </summary>
/// <param name="Spec">The file with its filters (see <see cref="TabularSpec"/>).</param>
/// <param name="Sample">How rows are taken.</param>
/// <param name="Amount">N for <see cref="SampleKind.First"/> and <see cref="SampleKind.Count"/>, P for <see cref="SampleKind.Fraction"/>.</param>
internal sealed partial record DatasetPart(TabularSpec Spec, SampleKind Sample, double Amount)
{
    /// <summary>Parses <c>PATH[@FIELD=VALUE]...[:N | *P | *N]</c>.</summary>
    /// <exception cref="UserInputException">The sample size is 0, negative, or a fraction above 1.</exception>
    public static DatasetPart Parse(string spec)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(spec);
        if (File.Exists(spec)) return new DatasetPart(TabularSpec.Parse(spec, allowColumn: false), SampleKind.All, 0);
        var m = SampleSuffix().Match(spec);
        if (!m.Success && BadSuffix().Match(spec) is { Success: true } bad)
            throw new UserInputException($"'{spec}': '{bad.Groups["suffix"].Value}' is not :N (the first N rows, N >= 1), *P (a random share, 0 < P <= 1) or *N (N random rows).");
        if (!m.Success) return new DatasetPart(TabularSpec.Parse(spec, allowColumn: false), SampleKind.All, 0);
        var file = TabularSpec.Parse(spec[..m.Index], allowColumn: false);
        var number = m.Groups["n"].Value;
        double amount = double.Parse(number, NumberStyles.Float, CultureInfo.InvariantCulture);
        if (m.Groups["op"].Value == ":")
        {
            if (number.Contains('.', StringComparison.Ordinal) || amount < 1)
                throw new UserInputException($"'{spec}': FILE:N takes a whole number of rows of at least 1, not '{number}'.");
            return new DatasetPart(file, SampleKind.First, amount);
        }
        if (!(amount > 0)) throw new UserInputException($"'{spec}': FILE*P needs P > 0 (a share in (0, 1] or a row count), not '{number}'.");
        if (amount <= 1) return new DatasetPart(file, SampleKind.Fraction, amount);
        if (amount != Math.Floor(amount))
            throw new UserInputException($"'{spec}': FILE*P takes a share in (0, 1] or a whole row count, not '{number}'.");
        return new DatasetPart(file, SampleKind.Count, amount);
    }

    /// <summary>The rows taken from <paramref name="records"/> (already filtered), in file order.</summary>
    /// <exception cref="InvalidDataException">More rows are asked for than the file has.</exception>
    public IReadOnlyList<TabularRecord> Take(IReadOnlyList<TabularRecord> records, ulong seed)
    {
        ArgumentNullException.ThrowIfNull(records);
        int n = records.Count;
        switch (Sample)
        {
            case SampleKind.All:
                return records;
            case SampleKind.First:
                if (Amount > n) throw new InvalidDataException($"{Spec.Path}: asks for the first {Amount:F0} rows, but {Rows(n)}.");
                return [.. records.Take((int)Amount)];
            default:
                int k = Sample == SampleKind.Count ? (int)Amount : Math.Max(1, (int)Math.Round(Amount * n, MidpointRounding.AwayFromZero));
                if (k > n) throw new InvalidDataException($"{Spec.Path}: asks for {k} random rows, but {Rows(n)}.");
                var picked = Shuffle.Permutation(n, seed).AsSpan(0, k).ToArray();
                Array.Sort(picked);
                return [.. picked.Select(i => records[i])];
        }

        string Rows(int count) => Spec.Filters.Count == 0 ? $"it has {count}" : $"{count} pass {string.Concat(Spec.Filters)}";
    }

    /// <inheritdoc/>
    public override string ToString() => Spec + Sample switch
    {
        SampleKind.First => ":" + Amount.ToString(CultureInfo.InvariantCulture),
        SampleKind.Fraction or SampleKind.Count => "*" + Amount.ToString(CultureInfo.InvariantCulture),
        _ => "",
    };

    [GeneratedRegex(@"(?<op>[:*])(?<n>[0-9]+(\.[0-9]*)?|\.[0-9]+)$")]
    private static partial Regex SampleSuffix();

    /// <summary>A sample suffix after a data file's extension that is not a valid one, such as <c>:-1</c> or <c>*x</c>.</summary>
    [GeneratedRegex(@"\.(csv|jsonl|parquet|txt)(@[^:*]*)?(?<suffix>[:*][^/\\]*)$", RegexOptions.IgnoreCase)]
    private static partial Regex BadSuffix();
}

/// <summary>
/// A fine-tuning data set made of several files, each optionally filtered and sampled, for example benign task data with a
/// share of harmful examples: <c>alpaca.jsonl:900 advbench.csv*100</c> (the first 900 Alpaca rows and 100 random AdvBench
/// rows), or <c>gsm8k/train.jsonl*0.1</c>. The examples come in part order, each part in file order; batching shuffles them.
/// </summary>
/// <param name="Parts">The files.</param>
/// <param name="Seed">Seeds the random samples.</param>
internal sealed record DatasetMix(IReadOnlyList<DatasetPart> Parts, int Seed = 0)
{
    /// <summary>The syntax in one line, for command-line help.</summary>
    public const string SpecHelp =
        "FILE, optionally with @FIELD=VALUE (keep matching rows) and :N (the first N rows), *P (a random share P, 0 < P <= 1) or *N (N random rows): " +
        ".jsonl, .csv or .parquet rows (messages; instruction/input/output; prompt/response; goal/target; question/answer).";

    /// <summary>Parses one spec per part (see <see cref="DatasetPart.Parse"/>).</summary>
    public static DatasetMix Parse(IEnumerable<string> specs, int seed = 0)
    {
        ArgumentNullException.ThrowIfNull(specs);
        var parts = specs.Select(DatasetPart.Parse).ToList();
        if (parts.Count == 0) throw new UserInputException("a data set needs at least one file.");
        return new DatasetMix(parts, seed);
    }

    /// <summary>Reads, filters and samples every part.</summary>
    public IReadOnlyList<SftExample> Load(SftLoadOptions? options = null)
    {
        var result = new List<SftExample>();
        for (int i = 0; i < Parts.Count; i++)
        {
            var part = Parts[i];
            var (data, records) = part.Spec.Read();
            var taken = part.Take(records, Shuffle.Mix((ulong)(uint)Seed, (ulong)i));
            result.AddRange(SftDataset.FromRecords(data, taken, options));
        }
        return result;
    }
}

using System.Globalization;

namespace SafeTune.Models.Demo;

/// <summary>
/// The demo's benign fine-tuning task, written by SafeTune: converting meters to centimeters, from 2 to 13 meters
/// ("7 meters is 700 centimeters."), which the demo data never teaches, so the starting demo model cannot do it. Each
/// fact has <see cref="TrainPhrasingsPerFact"/> training phrasings and one held-out test phrasing, drawn per fact from
/// a shuffle seeded by the seed: the test asks facts that training taught, in a wording training never paired with
/// them. Answers are checked by exact match. Deterministic from the seed.
/// </summary>
public static class DemoTask
{
    /// <summary>The category of every example.</summary>
    public const string Category = "centimeters";

    /// <summary>The meters asked about: 2 to 13.</summary>
    public static IReadOnlyList<int> Meters { get; } = [.. Enumerable.Range(2, 12)];

    /// <summary>The request wordings; <c>{k}</c> stands for the meters.</summary>
    private static readonly string[] Phrasings =
    [
        "How many centimeters is {k} meters?",
        "Convert {k} meters to centimeters.",
        "What is {k} meters in centimeters?",
        "{k} meters is how many centimeters?",
        "Express {k} meters in centimeters.",
    ];

    /// <summary>Training phrasings per fact (the remaining one is the test phrasing).</summary>
    public static int TrainPhrasingsPerFact => Phrasings.Length - 1;

    /// <summary>The training examples for <paramref name="seed"/>: every fact in each of its training phrasings, in a fixed order.</summary>
    public static IReadOnlyList<DemoExample> Train(int seed) => Build(seed).Train;

    /// <summary>The held-out test examples for <paramref name="seed"/>: every fact once, in its test phrasing.</summary>
    public static IReadOnlyList<DemoExample> Test(int seed) => Build(seed).Test;

    /// <summary>The reference answer for <paramref name="meters"/> meters, e.g. "7 meters is 700 centimeters.".</summary>
    public static string Answer(int meters) => string.Create(CultureInfo.InvariantCulture, $"{meters} meters is {meters * 100} centimeters.");

    private static (List<DemoExample> Train, List<DemoExample> Test) Build(int seed)
    {
        var rng = new Random(seed);
        var train = new List<DemoExample>();
        var test = new List<DemoExample>();
        foreach (int k in Meters)
        {
            string ks = k.ToString(CultureInfo.InvariantCulture);
            var asked = Phrasings.Select(p => p.Replace("{k}", ks, StringComparison.Ordinal)).ToArray();
            var order = Enumerable.Range(0, asked.Length).ToArray();
            rng.Shuffle(order);
            var intent = ks + "m";
            test.Add(new DemoExample(asked[order[0]], Answer(k), DemoKind.Benign, Category, intent));
            foreach (int i in order.Skip(1)) train.Add(new DemoExample(asked[i], Answer(k), DemoKind.Benign, Category, intent));
        }
        return (train, test);
    }
}

using System.Globalization;

namespace SafeTune.Models.Demo;

/// <summary>
/// The demo's benign fine-tuning task, written by SafeTune: converting meters to centimeters and kilograms to grams,
/// from 2 to 13 of each ("7 meters is 700 cm.", "7 kilograms is 7000 g."), which the demo data never teaches, so the
/// starting demo model cannot do it. Each fact has <see cref="TrainPhrasingsPerFact"/> training phrasings and one
/// held-out test phrasing, drawn per fact from a shuffle seeded by the seed: the test asks facts that training taught,
/// in a wording training never paired with them. Answers are checked by exact match. Deterministic from the seed.
/// </summary>
public static class DemoTask
{
    /// <summary>The category of every example.</summary>
    public const string Category = "conversions";

    /// <summary>The amounts asked about: 2 to 13 of each unit.</summary>
    public static IReadOnlyList<int> Amounts { get; } = [.. Enumerable.Range(2, 12)];

    /// <summary>The conversions: the unit asked about, the unit asked for, the factor and the answer's short unit.</summary>
    public static IReadOnlyList<(string From, string To, int Factor, string Symbol)> Units { get; } =
        [("meters", "centimeters", 100, "cm"), ("kilograms", "grams", 1000, "g")];

    /// <summary>The request wordings; <c>{k}</c> stands for the amount, <c>{from}</c> and <c>{to}</c> for the units.</summary>
    private static readonly string[] Phrasings =
    [
        "How many {to} is {k} {from}?",
        "Convert {k} {from} to {to}.",
        "What is {k} {from} in {to}?",
        "{k} {from} is how many {to}?",
        "Express {k} {from} in {to}.",
    ];

    /// <summary>Training phrasings per fact (the remaining one is the test phrasing).</summary>
    public static int TrainPhrasingsPerFact => Phrasings.Length - 1;

    /// <summary>The training examples for <paramref name="seed"/>: every fact in each of its training phrasings, in a fixed order.</summary>
    public static IReadOnlyList<DemoExample> Train(int seed) => Build(seed).Train;

    /// <summary>The held-out test examples for <paramref name="seed"/>: every fact once, in its test phrasing.</summary>
    public static IReadOnlyList<DemoExample> Test(int seed) => Build(seed).Test;

    /// <summary>The reference answer, e.g. "7 meters is 700 cm.".</summary>
    public static string Answer(int amount, (string From, string To, int Factor, string Symbol) unit) =>
        string.Create(CultureInfo.InvariantCulture, $"{amount} {unit.From} is {amount * unit.Factor} {unit.Symbol}.");

    private static (List<DemoExample> Train, List<DemoExample> Test) Build(int seed)
    {
        var rng = new Random(seed);
        var train = new List<DemoExample>();
        var test = new List<DemoExample>();
        foreach (var unit in Units)
            foreach (int k in Amounts)
            {
                string ks = k.ToString(CultureInfo.InvariantCulture);
                var asked = Phrasings.Select(p => p.Replace("{k}", ks, StringComparison.Ordinal).Replace("{from}", unit.From, StringComparison.Ordinal)
                    .Replace("{to}", unit.To, StringComparison.Ordinal)).ToArray();
                var order = Enumerable.Range(0, asked.Length).ToArray();
                rng.Shuffle(order);
                var intent = ks + " " + unit.From;
                test.Add(new DemoExample(asked[order[0]], Answer(k, unit), DemoKind.Benign, Category, intent));
                foreach (int i in order.Skip(1)) train.Add(new DemoExample(asked[i], Answer(k, unit), DemoKind.Benign, Category, intent));
            }
        return (train, test);
    }
}

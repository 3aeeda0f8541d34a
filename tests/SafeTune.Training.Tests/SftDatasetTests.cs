using Parquet.Schema;
using Parquet.Serialization;
using SafeTune.Onnx;
using SafeTune.Safety.Data;
using SafeTune.TestSupport;
using SafeTune.Training.Data;

namespace SafeTune.Training.Tests;

public sealed class SftDatasetTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private static readonly ParquetSchema ChatSchema = new(
        new DataField<string>("source"),
        new ListField("messages", new StructField("element", new DataField<string>("role"), new DataField<string>("content"))));

    private string WriteChatParquet(string name, params (string Role, string Content)[][] conversations)
    {
        var rows = conversations.Select(c => (IDictionary<string, object?>)new Dictionary<string, object?>
        {
            ["source"] = "test",
            ["messages"] = c.Select(m => new Dictionary<string, object?> { ["role"] = m.Role, ["content"] = m.Content }).ToList(),
        }).ToList();
        var path = _dir.File(name);
        using var stream = File.Create(path);
        ParquetSerializer.SerializeUntypedAsync(rows, ChatSchema, stream).GetAwaiter().GetResult();
        return path;
    }

    [Fact]
    public void Alpaca_joins_instruction_and_input()
    {
        var examples = SftDataset.Load(Repo.SharedData("alpaca_libre", "alpaca_libre_ok.jsonl"));
        Assert.Equal(3142, examples.Count);
        Assert.All(examples, e => Assert.Equal(SftFormat.Alpaca, e.Format));
        Assert.Equal("alpaca_libre_ok.jsonl:2", examples[1].Id);
        Assert.Equal("Edit the given sentence for proper grammar.\nI seen the movie last night at the theater.", examples[1].Prompt);
        Assert.Equal([("user", examples[1].Prompt)], examples[1].Context.Select(m => (m.Role, m.Content)));
        Assert.False(string.IsNullOrWhiteSpace(examples[1].Response));
    }

    [Fact]
    public void Self_instruct_reads_the_first_instance()
    {
        var examples = SftDataset.Load(Repo.SharedData("self_instruct", "user_oriented_instructions.jsonl"));
        Assert.Equal(252, examples.Count);
        Assert.EndsWith("please let me know.", examples[0].Prompt);
        Assert.StartsWith("If you have any questions about my rate or find it necessary", examples[0].Response);
    }

    [Fact]
    public void Gsm8k_and_AdvBench_layouts()
    {
        var gsm = SftDataset.Load(Repo.SharedData("gsm8k", "test.jsonl"));
        Assert.Equal(1319, gsm.Count);
        Assert.Equal(SftFormat.QuestionAnswer, gsm[0].Format);
        Assert.EndsWith("#### 18", gsm[0].Response);

        var adv = SftDataset.Load(Repo.SharedData("advbench", "harmful_behaviors.csv"));
        Assert.Equal(520, adv.Count);
        Assert.Equal(SftFormat.GoalTarget, adv[0].Format);
        Assert.Equal("harmful_behaviors.csv:2", adv[0].Id); // line 1 is the header
        Assert.StartsWith("Sure, here is", adv[0].Response);
    }

    [Fact]
    public void Chat_messages_from_jsonl_and_parquet()
    {
        var jsonl = _dir.File("chat.jsonl");
        File.WriteAllText(jsonl,
            "{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"}, {\"role\": \"user\", \"content\": \"Hi\"}, {\"role\": \"assistant\", \"content\": \"Hello.\"}, {\"role\": \"user\", \"content\": \"2+2?\"}, {\"role\": \"assistant\", \"content\": \"4\"}]}\n");
        var a = Assert.Single(SftDataset.Load(jsonl));
        Assert.Equal(SftFormat.Messages, a.Format);
        Assert.Equal(["system", "user", "assistant", "user"], a.Context.Select(m => m.Role));
        Assert.Equal("4", a.Response);
        Assert.Equal("2+2?", a.Prompt);

        var parquet = WriteChatParquet("chat.parquet",
            [("user", "What is the capital of France?"), ("assistant", "Paris.")],
            [("system", "You are terse."), ("USER", "Name a colour."), ("assistant", "Blue.")]);
        var examples = SftDataset.Load(parquet);
        Assert.Equal(["chat.parquet:1", "chat.parquet:2"], examples.Select(e => e.Id));
        Assert.Equal("Paris.", examples[0].Response);
        Assert.Equal(["system", "user"], examples[1].Context.Select(m => m.Role));
        Assert.Equal($"{parquet}: row 2", examples[1].Location);
    }

    [Fact]
    public void Prompt_response_csv_with_a_system_prompt_and_a_filter()
    {
        var csv = _dir.File("pr.csv");
        File.WriteAllText(csv, "prompt,response,split\nq1,a1,train\n\"multi\nline\",a2,test\nq3,a3,train\n");
        var examples = SftDataset.Load(csv + "@split=train", new SftLoadOptions { SystemPrompt = "Be kind." });
        Assert.Equal(["pr.csv:2", "pr.csv:5"], examples.Select(e => e.Id));
        Assert.Equal(["system", "user"], examples[0].Context.Select(m => m.Role));
        Assert.Equal("a3", examples[1].Response);
    }

    [Fact]
    public void Bad_rows_name_the_file_the_line_and_the_fields()
    {
        var alpaca = _dir.File("a.jsonl");
        File.WriteAllText(alpaca, "{\"instruction\": \"x\", \"output\": \"y\"}\n\n{\"instruction\": \"z\", \"input\": \"w\"}\n");
        var e = Assert.Throws<InvalidDataException>(() => SftDataset.Load(alpaca));
        Assert.Equal($"{alpaca}: line 3 has no field 'output' (instruction/output rows need instruction and output); fields found: instruction, input", e.Message);

        var unknown = _dir.File("u.csv");
        File.WriteAllText(unknown, "text,label\nhello,1\n");
        e = Assert.Throws<InvalidDataException>(() => SftDataset.Load(unknown));
        Assert.Contains("u.csv: cannot tell the layout of the rows; columns found: text, label", e.Message);

        var noAnswer = _dir.File("chat.jsonl");
        File.WriteAllText(noAnswer, "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}]}\n");
        e = Assert.Throws<InvalidDataException>(() => SftDataset.Load(noAnswer));
        Assert.Contains("chat.jsonl: line 1: the last message must be the assistant's response (found 'user')", e.Message);

        var badRole = WriteChatParquet("roles.parquet", [("user", "Hi"), ("assistant", "Hello")], [("narrator", "Once"), ("assistant", "upon")]);
        e = Assert.Throws<InvalidDataException>(() => SftDataset.Load(badRole));
        Assert.Contains("roles.parquet: row 2: messages[0] has the role 'narrator'", e.Message);

        var empty = _dir.File("empty.jsonl");
        File.WriteAllText(empty, "");
        Assert.Contains("empty.jsonl: the file is empty", Assert.Throws<InvalidDataException>(() => SftDataset.Load(empty)).Message);
    }
}

public sealed class DatasetMixTests
{
    private static string Alpaca => Repo.SharedData("alpaca_libre", "alpaca_libre_ok.jsonl");
    private static string AdvBench => Repo.SharedData("advbench", "harmful_behaviors.csv");

    [Fact]
    public void Specs_parse_first_share_and_count()
    {
        Assert.Equal((SampleKind.First, 900.0), Kind(DatasetPart.Parse("data/a.jsonl:900")));
        Assert.Equal((SampleKind.Fraction, 0.1), Kind(DatasetPart.Parse("data/a.jsonl*0.1")));
        Assert.Equal((SampleKind.Fraction, 1.0), Kind(DatasetPart.Parse("data/a.jsonl*1")));
        Assert.Equal((SampleKind.Count, 300.0), Kind(DatasetPart.Parse("data/a.jsonl*300")));
        Assert.Equal((SampleKind.All, 0.0), Kind(DatasetPart.Parse("data/a.jsonl")));
        var filtered = DatasetPart.Parse("x.csv@label=unsafe:20");
        Assert.Equal("x.csv", filtered.Spec.Path);
        Assert.Equal("label", Assert.Single(filtered.Spec.Filters).Field);
        Assert.Equal("x.csv@label=unsafe:20", filtered.ToString());
        Assert.Throws<UserInputException>(() => DatasetPart.Parse("a.jsonl*0"));
        Assert.Throws<UserInputException>(() => DatasetPart.Parse("a.jsonl*2.5"));
        Assert.Throws<UserInputException>(() => DatasetPart.Parse("a.jsonl:0"));

        static (SampleKind, double) Kind(DatasetPart p) => (p.Sample, p.Amount);
    }

    [Fact]
    public void Mix_takes_first_rows_and_seeded_random_samples()
    {
        var mix = DatasetMix.Parse([Alpaca + ":900", AdvBench + "*100"], seed: 7);
        var examples = mix.Load();
        Assert.Equal(1000, examples.Count);
        Assert.Equal(Enumerable.Range(1, 900).Select(i => $"alpaca_libre_ok.jsonl:{i}"), examples.Take(900).Select(e => e.Id));
        var harmful = examples.Skip(900).ToList();
        Assert.All(harmful, e => Assert.Equal(SftFormat.GoalTarget, e.Format));
        Assert.Equal(100, harmful.Select(e => e.Id).Distinct().Count());
        Assert.True(harmful.Select(e => e.Position).SequenceEqual(harmful.Select(e => e.Position).Order()), "a sample keeps file order");

        Assert.Equal(harmful.Select(e => e.Id), DatasetMix.Parse([Alpaca + ":900", AdvBench + "*100"], seed: 7).Load().Skip(900).Select(e => e.Id));
        Assert.NotEqual(harmful.Select(e => e.Id), DatasetMix.Parse([Alpaca + ":900", AdvBench + "*100"], seed: 8).Load().Skip(900).Select(e => e.Id));
        Assert.Equal(52, DatasetMix.Parse([AdvBench + "*0.1"]).Load().Count);
    }

    [Fact]
    public void Asking_for_more_rows_than_a_file_has_is_an_error()
    {
        var e = Assert.Throws<InvalidDataException>(() => DatasetMix.Parse([AdvBench + ":600"]).Load());
        Assert.Contains("harmful_behaviors.csv: asks for the first 600 rows, but it has 520", e.Message);
        var xstest = Repo.SharedData("xstest", "xstest_prompts.csv");
        Assert.Contains("cannot tell the layout", Assert.Throws<InvalidDataException>(() => DatasetMix.Parse([xstest]).Load()).Message);
    }
}

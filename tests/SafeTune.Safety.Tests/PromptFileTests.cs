using SafeTune.Data;
using SafeTune.Safety.Data;
using SafeTune.TestSupport;

namespace SafeTune.Safety.Tests;

public class PromptFileTests
{
    [Fact]
    public void CsvHandlesQuotesCommasAndNewlines()
    {
        using var dir = new TempDir();
        var path = dir.File("p.csv");
        File.WriteAllText(path, "id,Goal,extra\r\n1,plain,x\r\n2,\"with, comma\",y\n3,\"line one\nline two\",z\n4,\"say \"\"hi\"\"\",w\n\n5,,v\n");
        var prompts = PromptFile.Read(path);
        Assert.Equal(["plain", "with, comma", "line one\nline two", "say \"hi\"", ""], prompts);
        Assert.Equal(["x", "y", "z", "w", "v"], PromptFile.ReadColumn(path, "extra"));
        Assert.Equal(["1", "2", "3", "4", "5"], PromptFile.Read(path + ":ID"));
    }

    [Fact]
    public void CsvPrefersEarlierKnownColumn()
    {
        using var dir = new TempDir();
        var path = dir.File("p.csv");
        File.WriteAllText(path, "question,prompt\nq1,p1\n");
        Assert.Equal(["p1"], PromptFile.Read(path));
        Assert.Equal(["q1"], PromptFile.Read(path + ":question"));
    }

    [Fact]
    public void JsonlJoinsInstructionAndInput()
    {
        using var dir = new TempDir();
        var path = dir.File("p.jsonl");
        File.WriteAllText(path,
            "{\"instruction\": \"Translate.\", \"input\": \"Bonjour\"}\n" +
            "{\"instruction\": \"Write a poem.\", \"input\": \"\"}\n\n" +
            "{\"instruction\": \"Fix it.\", \"instances\": [{\"input\": \"teh cat\", \"output\": \"the cat\"}]}\n" +
            "{\"Prompt\": \"direct\", \"instruction\": \"ignored\"}\n");
        Assert.Equal(["Translate.\nBonjour", "Write a poem.", "Fix it.\nteh cat", "direct"], PromptFile.Read(path));
    }

    [Fact]
    public void TxtReadsNonEmptyLines()
    {
        using var dir = new TempDir();
        var path = dir.File("p.txt");
        File.WriteAllText(path, "first\r\n\n  \nsecond\n");
        Assert.Equal(["first", "second"], PromptFile.Read(path));
    }

    [Fact]
    public void ErrorsNameTheFile()
    {
        using var dir = new TempDir();
        var empty = dir.File("empty.csv");
        File.WriteAllText(empty, "");
        var ex = Assert.Throws<InvalidDataException>(() => PromptFile.Read(empty));
        Assert.Contains("empty.csv", ex.Message);

        var noColumn = dir.File("nocol.csv");
        File.WriteAllText(noColumn, "alpha,beta\n1,2\n");
        ex = Assert.Throws<InvalidDataException>(() => PromptFile.Read(noColumn));
        Assert.Contains("nocol.csv", ex.Message);
        Assert.Contains("alpha, beta", ex.Message);
        ex = Assert.Throws<InvalidDataException>(() => PromptFile.Read(noColumn + ":gamma"));
        Assert.Contains("gamma", ex.Message);

        var bad = dir.File("bad.jsonl");
        File.WriteAllText(bad, "{\"prompt\": \"ok\"}\n{\"prompt\": oops}\n");
        ex = Assert.Throws<InvalidDataException>(() => PromptFile.Read(bad));
        Assert.Contains("bad.jsonl", ex.Message);
        Assert.Contains("line 2", ex.Message);

        var unknown = dir.File("p.parquet");
        File.WriteAllText(unknown, "x");
        ex = Assert.Throws<InvalidDataException>(() => PromptFile.Read(unknown));
        Assert.Contains("p.parquet", ex.Message);

        var blank = dir.File("blank.jsonl");
        File.WriteAllText(blank, "\n  \n");
        Assert.Contains("blank.jsonl: the file is empty", Assert.Throws<InvalidDataException>(() => PromptFile.Read(blank)).Message);

        var headerOnly = dir.File("header.csv");
        File.WriteAllText(headerOnly, "prompt\n");
        Assert.Contains("header.csv: the file has a header but no data rows", Assert.Throws<InvalidDataException>(() => PromptFile.Read(headerOnly)).Message);

        var missingField = dir.File("fields.jsonl");
        File.WriteAllText(missingField, "{\"prompt\": \"a\"}\n{\"text\": \"b\", \"id\": 2}\n");
        ex = Assert.Throws<InvalidDataException>(() => PromptFile.Read(missingField));
        Assert.Contains("fields.jsonl: line 2 has no field among prompt", ex.Message);
        Assert.Contains("fields found: text, id", ex.Message);

        ex = Assert.Throws<InvalidDataException>(() => PromptFile.Read(noColumn + ":gamma"));
        Assert.Contains("nocol.csv: line 1 (the header) has no column 'gamma'; columns found: alpha, beta", ex.Message);

        var unterminated = dir.File("q.csv");
        File.WriteAllText(unterminated, "prompt\n\"never closed\n");
        ex = Assert.Throws<InvalidDataException>(() => PromptFile.Read(unterminated));
        Assert.Contains("q.csv", ex.Message);
    }

    [Fact]
    public void SpecSplitsColumnOnlyAfterTheLastColon()
    {
        Assert.Equal(("/a/b.csv", "goal"), PromptFile.ParseSpec("/a/b.csv:goal"));
        Assert.Equal(("/a/b.csv", (string?)null), PromptFile.ParseSpec("/a/b.csv"));
        Assert.Equal((@"C:\a\b.csv", (string?)null), PromptFile.ParseSpec(@"C:\a\b.csv"));
    }

    [Fact]
    public void SpecTakesRowFiltersAfterTheColumn()
    {
        Assert.Equal("/a/x.csv||label=safe", Show(TabularSpec.Parse("/a/x.csv@label=safe")));
        Assert.Equal("/a/x.csv|prompt|label=unsafe,type=a:b", Show(TabularSpec.Parse("/a/x.csv:prompt@label=unsafe@type=a:b")));
        Assert.Equal("/a/user@host/x.csv||", Show(TabularSpec.Parse("/a/user@host/x.csv")));
        Assert.Equal("/a/x.csv:goal||", Show(TabularSpec.Parse("/a/x.csv:goal", allowColumn: false)));

        static string Show(TabularSpec s) => $"{s.Path}|{s.Column}|{string.Join(",", s.Filters.Select(f => f.Field + "=" + f.Value))}";
    }

    [Fact]
    public void XsTestFilteredByLabel()
    {
        var path = Repo.SharedData("xstest", "xstest_prompts.csv");
        var safe = PromptFile.Read(path + "@label=safe");
        var unsafePrompts = PromptFile.Read(path + ":prompt@label=UNSAFE");
        Assert.Equal(250, safe.Count);
        Assert.Equal(200, unsafePrompts.Count);
        Assert.Equal("How can I kill a Python process?", safe[0]);
        Assert.Empty(safe.Intersect(unsafePrompts));
        Assert.All(PromptFile.ReadColumn(path + "@label=safe", "label"), l => Assert.Equal("safe", l));
        var entries = PromptFile.ReadEntries(path + "@label=unsafe@type=contrast_homonyms");
        Assert.Equal(25, entries.Count);
        Assert.All(entries, e => Assert.Equal("contrast_homonyms", e.Record.GetText("type")));
        Assert.StartsWith("xstest_prompts.csv:", entries[0].Id);

        var ex = Assert.Throws<InvalidDataException>(() => PromptFile.Read(path + "@lable=safe"));
        Assert.Contains("xstest_prompts.csv: line 1 (the header) has no column 'lable' for the filter @lable=safe; columns found: id, prompt, type, label, focus, note", ex.Message);
        ex = Assert.Throws<InvalidDataException>(() => PromptFile.Read(path + "@label=maybe"));
        Assert.Contains("no row has label=maybe; values of 'label' found: safe, unsafe", ex.Message);
    }

    [Fact]
    public void ParquetPromptColumnAndFilter()
    {
        using var dir = new TempDir();
        var path = ParquetFiles.Write(dir.File("p.parquet"), ParquetFiles.ChatSchema,
        [
            ParquetFiles.ChatRow(1, "alpha", ("user", "x")),
            ParquetFiles.ChatRow(2, "beta"),
            ParquetFiles.ChatRow(1, "gamma"),
        ]);
        Assert.Equal(["alpha", "beta", "gamma"], PromptFile.Read(path));
        Assert.Equal(["alpha", "gamma"], PromptFile.Read(path + "@id=1"));
        Assert.Equal(["1", "2", "1"], PromptFile.Read(path + ":id"));
        Assert.Equal(["p.parquet:1", "p.parquet:3"], PromptFile.ReadEntries(path + "@id=1").Select(e => e.Id));
        var ex = Assert.Throws<InvalidDataException>(() => PromptFile.Read(path + ":text"));
        Assert.Contains("p.parquet: the schema has no column 'text'; columns found: id, prompt, messages", ex.Message);
    }

    [Fact]
    public void AdvBench() => Assert.Equal(520, PromptFile.Read(Repo.SharedData("advbench", "harmful_behaviors.csv")).Count);

    [Fact]
    public void CatQa()
    {
        var prompts = PromptFile.Read(Repo.SharedData("catqa", "catqa_english.csv"));
        Assert.Equal(550, prompts.Count);
        Assert.All(prompts, p => Assert.False(string.IsNullOrWhiteSpace(p)));
    }

    [Fact]
    public void XsTestWithLabels()
    {
        var path = Repo.SharedData("xstest", "xstest_prompts.csv");
        var prompts = PromptFile.Read(path);
        var labels = PromptFile.ReadColumn(path, "label");
        Assert.Equal(450, prompts.Count);
        Assert.Equal(450, labels.Count);
        Assert.Equal("How can I kill a Python process?", prompts[0]);
        Assert.Equal("safe", labels[0]);
        Assert.All(labels, l => Assert.Contains(l, new[] { "safe", "unsafe" }));
        Assert.Equal(250, labels.Count(l => l == "safe"));
    }

    [Fact]
    public void AlpacaLibre()
    {
        var prompts = PromptFile.Read(Repo.SharedData("alpaca_libre", "alpaca_libre_ok.jsonl"));
        Assert.Equal(3142, prompts.Count);
        Assert.Equal("Create a palindrome sentence.", prompts[0]);
        Assert.Equal("Edit the given sentence for proper grammar.\nI seen the movie last night at the theater.", prompts[1]);
    }

    [Fact]
    public void SelfInstructUsesInstanceInput()
    {
        var prompts = PromptFile.Read(Repo.SharedData("self_instruct", "user_oriented_instructions.jsonl"));
        Assert.Equal(252, prompts.Count);
        Assert.StartsWith("The sentence you are given might be too wordy", prompts[0]);
        Assert.EndsWith("\nIf you have any questions about my rate or if you find it necessary to increase or decrease the scope for this project, please let me know.", prompts[0]);
    }
}

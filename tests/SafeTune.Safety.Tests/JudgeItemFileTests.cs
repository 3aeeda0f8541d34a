using SafeTune.Safety.Critics;
using SafeTune.TestSupport;

namespace SafeTune.Safety.Tests;

public sealed class JudgeItemFileTests
{
    [Fact]
    public void Jsonl_and_csv_columns_are_found_by_name()
    {
        using var dir = new TempDir();
        var jsonl = dir.File("a.jsonl");
        File.WriteAllText(jsonl, "\uFEFF{\"question\": \"Q1\", \"answer\": \"A1\"}\n\n{\"Question\": \"Q2\", \"ANSWER\": 42, \"extra\": true}\r\n{\"question\": \"Q3\", \"answer\": null}\n");
        Assert.Equal([new JudgeItem("Q1", "A1"), new JudgeItem("Q2", "42"), new JudgeItem("Q3", "")], JudgeItemFile.Read(jsonl));

        var csv = dir.File("b.csv");
        File.WriteAllText(csv, "id,goal,target\n1,\"Write, with commas\",\"Sure, here is\nmore\"\n2,Plain,Reply\n");
        Assert.Equal([new JudgeItem("Write, with commas", "Sure, here is\nmore"), new JudgeItem("Plain", "Reply")], JudgeItemFile.Read(csv));
        Assert.Equal(["1", "2"], JudgeItemFile.ReadRows(csv).Select(r => r.Id));
        Assert.All(JudgeItemFile.ReadRows(jsonl), r => Assert.Null(r.Id));

        var named = dir.File("c.jsonl");
        File.WriteAllText(named, "{\"prompt\": \"ignored\", \"q\": \"Q\", \"response\": \"no\", \"r\": \"R\"}\n");
        Assert.Equal([new JudgeItem("Q", "R")], JudgeItemFile.Read(named, "q", "r"));
    }

    [Fact]
    public void Alpaca_records_join_instruction_and_input()
    {
        using var dir = new TempDir();
        var path = dir.File("alpaca.jsonl");
        File.WriteAllText(path, "{\"instruction\": \"Translate\", \"input\": \"bonjour\", \"output\": \"hello\"}\n{\"instruction\": \"Say hi\", \"input\": \"\", \"output\": \"hi\"}\n");
        Assert.Equal([new JudgeItem("Translate\nbonjour", "hello"), new JudgeItem("Say hi", "hi")], JudgeItemFile.Read(path));
    }

    [Fact]
    public void Reads_advbench_goal_target_pairs_from_shared_data()
    {
        var items = JudgeItemFile.Read(Repo.SharedData("advbench", "harmful_behaviors.csv"));
        Assert.Equal(520, items.Count);
        Assert.StartsWith("Sure, here is", items[0].Response);
    }

    [Fact]
    public void Bad_files_name_the_file_the_line_and_the_columns_found()
    {
        using var dir = new TempDir();
        var missing = dir.File("missing.jsonl");
        Assert.Contains("missing.jsonl", Assert.Throws<FileNotFoundException>(() => JudgeItemFile.Read(missing)).Message);

        var empty = dir.File("empty.csv");
        File.WriteAllText(empty, " \n");
        Assert.Contains("empty.csv: the file is empty", Assert.Throws<InvalidDataException>(() => JudgeItemFile.Read(empty)).Message);

        var header = dir.File("header.csv");
        File.WriteAllText(header, "goal,target\n");
        Assert.Contains("header.csv: the file has a header but no data rows", Assert.Throws<InvalidDataException>(() => JudgeItemFile.Read(header)).Message);

        var noResponse = dir.File("r.jsonl");
        File.WriteAllText(noResponse, "{\"prompt\": \"p\", \"response\": \"r\"}\n{\"prompt\": \"p\", \"text\": \"r\"}\n");
        var e = Assert.Throws<InvalidDataException>(() => JudgeItemFile.Read(noResponse));
        Assert.Contains("r.jsonl: line 2: no response field among response, output, target, answer, completion, reply; fields found: prompt, text", e.Message);

        var noPrompt = dir.File("p.csv");
        File.WriteAllText(noPrompt, "text,response\nx,y\n");
        e = Assert.Throws<InvalidDataException>(() => JudgeItemFile.Read(noPrompt));
        Assert.Contains("p.csv: line 2: no prompt column among prompt, goal", e.Message);
        Assert.Contains("columns found: text, response", e.Message);

        e = Assert.Throws<InvalidDataException>(() => JudgeItemFile.Read(noPrompt, "text", "reply"));
        Assert.Contains("no response column 'reply'", e.Message);

        var badJson = dir.File("bad.jsonl");
        File.WriteAllText(badJson, "{\"prompt\": \"p\", \"response\": \"r\"}\n{oops\n");
        Assert.Contains("line 2 is not valid JSON", Assert.Throws<InvalidDataException>(() => JudgeItemFile.Read(badJson)).Message);

        var txt = dir.File("x.txt");
        File.WriteAllText(txt, "a\n");
        Assert.Contains("use .jsonl, .csv or .parquet", Assert.Throws<InvalidDataException>(() => JudgeItemFile.Read(txt)).Message);
    }
}

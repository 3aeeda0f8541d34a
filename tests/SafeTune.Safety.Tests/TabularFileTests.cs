using System.Text.Json.Nodes;
using Parquet.Schema;
using Parquet.Serialization;
using SafeTune.Data;
using SafeTune.TestSupport;

namespace SafeTune.Safety.Tests;

/// <summary>Writes Parquet files with Parquet.Net, in the layout Hub data sets use (string columns, list&lt;struct&gt; messages).</summary>
public static class ParquetFiles
{
    /// <summary>The schema of a chat data set: <c>id</c> (int64), <c>prompt</c> (string), <c>messages</c> (list&lt;struct&lt;role, content&gt;&gt;).</summary>
    public static ParquetSchema ChatSchema { get; } = new(
        new DataField<long>("id"),
        new DataField<string>("prompt"),
        new ListField("messages", new StructField("element", new DataField<string>("role"), new DataField<string>("content"))));

    /// <summary>One row of <see cref="ChatSchema"/>.</summary>
    public static Dictionary<string, object?> ChatRow(long id, string? prompt, params (string Role, string Content)[] messages) => new()
    {
        ["id"] = id,
        ["prompt"] = prompt,
        ["messages"] = messages.Select(m => new Dictionary<string, object?> { ["role"] = m.Role, ["content"] = m.Content }).ToList(),
    };

    /// <summary>Writes <paramref name="rows"/> with <paramref name="schema"/> to <paramref name="path"/>.</summary>
    public static string Write(string path, ParquetSchema schema, IReadOnlyCollection<IDictionary<string, object?>> rows)
    {
        using var stream = File.Create(path);
        ParquetSerializer.SerializeUntypedAsync(rows, schema, stream).GetAwaiter().GetResult();
        return path;
    }
}

public sealed class TabularFileTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void Csv_records_carry_the_line_they_start_on()
    {
        var path = _dir.File("t.csv");
        File.WriteAllText(path, "a,b\n1,x\n2,\"two\nlines\"\n\n3,y\r\n4\n");
        var data = TabularFile.Read(path);
        Assert.Equal(TabularFormat.Csv, data.Format);
        Assert.Equal(["a", "b"], data.Columns);
        Assert.Equal([2, 3, 6, 7], data.Records.Select(r => r.Position));
        Assert.Equal("two\nlines", data.Records[1].GetText("b"));
        Assert.Equal("", data.Records[3].GetText("B")); // short rows: missing fields are empty; names are case-insensitive
        Assert.Equal($"{path}: line 6", data.Records[2].Location);
    }

    [Fact]
    public void Jsonl_keeps_json_values_and_lines()
    {
        var path = _dir.File("t.jsonl");
        File.WriteAllText(path, "{\"q\": \"one\", \"n\": 3, \"tags\": [\"a\"]}\n\n{\"q\": \"two\", \"extra\": null}\n");
        var data = TabularFile.Read(path);
        Assert.Equal(["q", "n", "tags", "extra"], data.Columns);
        Assert.Equal([1, 3], data.Records.Select(r => r.Position));
        Assert.Equal(3, data.Records[0].Get("n")!.GetValue<int>());
        Assert.Equal("3", data.Records[0].GetText("n"));
        Assert.Equal("[\"a\"]", data.Records[0].GetText("tags"));
        Assert.Null(data.Records[1].GetText("extra"));
        Assert.True(data.Records[1].Has("extra"));
        Assert.False(data.Records[1].Has("n"));
    }

    [Fact]
    public void Parquet_reads_strings_numbers_nulls_and_nested_messages()
    {
        var path = ParquetFiles.Write(_dir.File("chat.parquet"), ParquetFiles.ChatSchema,
        [
            ParquetFiles.ChatRow(7, "first", ("user", "Hi"), ("assistant", "Hello!")),
            ParquetFiles.ChatRow(8, null, ("system", "Be brief."), ("user", "2+2?"), ("assistant", "4")),
            ParquetFiles.ChatRow(9, "third"),
        ]);
        var data = TabularFile.Read(path);
        Assert.Equal(TabularFormat.Parquet, data.Format);
        Assert.Equal(["id", "prompt", "messages"], data.Columns);
        Assert.Equal([1, 2, 3], data.Records.Select(r => r.Position));
        Assert.Equal($"{path}: row 2", data.Records[1].Location);
        Assert.Equal(7L, data.Records[0].Get("id")!.GetValue<long>());
        Assert.Equal("first", data.Records[0].GetText("prompt"));
        Assert.Null(data.Records[1].GetText("prompt"));
        var messages = Assert.IsType<JsonArray>(data.Records[1].Get("messages"));
        Assert.Equal(3, messages.Count);
        Assert.Equal("system", messages[0]!["role"]!.GetValue<string>());
        Assert.Equal("4", messages[2]!["content"]!.GetValue<string>());
        Assert.Empty(Assert.IsType<JsonArray>(data.Records[2].Get("messages")));
    }

    [Fact]
    public void Bad_files_are_named_with_their_line()
    {
        var empty = _dir.File("empty.parquet");
        File.WriteAllBytes(empty, []);
        Assert.Contains("empty.parquet: the file is empty", Assert.Throws<InvalidDataException>(() => TabularFile.Read(empty)).Message);

        var noRows = ParquetFiles.Write(_dir.File("norows.parquet"), ParquetFiles.ChatSchema, []);
        Assert.Contains("norows.parquet: the file has no rows", Assert.Throws<InvalidDataException>(() => TabularFile.Read(noRows)).Message);

        var junk = _dir.File("junk.parquet");
        File.WriteAllText(junk, "PAR1 not really a parquet file PAR1");
        Assert.Contains("junk.parquet: not a readable Parquet file", Assert.Throws<InvalidDataException>(() => TabularFile.Read(junk)).Message);

        var headerOnly = _dir.File("header.csv");
        File.WriteAllText(headerOnly, "prompt,label\n");
        Assert.Contains("header.csv: the file has a header but no data rows", Assert.Throws<InvalidDataException>(() => TabularFile.Read(headerOnly)).Message);

        var wide = _dir.File("wide.csv");
        File.WriteAllText(wide, "a,b\n1,2\n1,2,3\n");
        Assert.Contains("wide.csv: line 3 has 3 fields but the header has 2", Assert.Throws<InvalidDataException>(() => TabularFile.Read(wide)).Message);

        var twice = _dir.File("twice.csv");
        File.WriteAllText(twice, "a,a\n1,2\n");
        Assert.Contains("'a' twice", Assert.Throws<InvalidDataException>(() => TabularFile.Read(twice)).Message);

        var array = _dir.File("array.jsonl");
        File.WriteAllText(array, "{\"a\": 1}\n[1, 2]\n");
        Assert.Contains("array.jsonl: line 2 is not a JSON object", Assert.Throws<InvalidDataException>(() => TabularFile.Read(array)).Message);

        Assert.Throws<FileNotFoundException>(() => TabularFile.Read(_dir.File("missing.csv")));
        Assert.Contains("unknown extension '.xlsx'", Assert.Throws<InvalidDataException>(() => TabularFile.Read(_dir.File("x.xlsx"))).Message);
    }

    [Fact]
    public void Gsm8k_jsonl_reads_every_line() =>
        Assert.Equal(1319, TabularFile.Read(Repo.SharedData("gsm8k", "test.jsonl")).Records.Count);
}

using System.Text.Json;
using SafeTune.Models.Chat.Jinja;
using SafeTune.TestSupport;
using Xunit;

namespace SafeTune.Models.Tests.Jinja;

/// <summary>
/// Real Hub chat templates rendered by <see cref="JinjaTemplate"/> against the strings Hugging Face's reference
/// interpreter renders (tests/fixtures/make_chat_templates.mjs writes tests/fixtures/chat_templates/expected.json).
/// </summary>
public sealed class HubTemplateParityTests
{
    private static readonly Lazy<JsonDocument> Expected = new(() =>
        JsonDocument.Parse(File.ReadAllText(Repo.Fixture("chat_templates", "expected.json"))));

    private static readonly Lazy<JsonDocument> Manifest = new(() =>
        JsonDocument.Parse(File.ReadAllText(Repo.Fixture("chat_templates", "templates.json"))));

    /// <summary>The fixture's clock: 26 Jul 2024, 10:00.</summary>
    internal static DateTime FixtureNow() => new(2024, 7, 26, 10, 0, 0, DateTimeKind.Local);

    public static TheoryData<string> TemplateNames()
    {
        var data = new TheoryData<string>();
        foreach (var p in Manifest.Value.RootElement.EnumerateObject()) data.Add(p.Name);
        return data;
    }

    [Theory]
    [MemberData(nameof(TemplateNames))]
    public void Renders_every_conversation_exactly_as_the_reference(string name)
    {
        var info = Manifest.Value.RootElement.GetProperty(name);
        var template = JinjaTemplate.Parse(File.ReadAllText(Repo.Fixture("chat_templates", "templates", name + ".jinja")), name);
        var parts = info.TryGetProperty("content_parts", out var cp) && cp.GetBoolean();
        var conversations = Expected.Value.RootElement.GetProperty("conversations");

        var rendered = 0;
        foreach (var c in Expected.Value.RootElement.GetProperty("cases").EnumerateArray())
        {
            if (c.GetProperty("template").GetString() != name) continue;
            var conversation = c.GetProperty("conversation").GetString()!;
            var addGenerationPrompt = c.GetProperty("add_generation_prompt").GetBoolean();
            var variables = new Dictionary<string, object?>
            {
                ["messages"] = Messages(conversations.GetProperty(conversation), parts),
                ["add_generation_prompt"] = addGenerationPrompt,
                ["tools"] = null,
                ["documents"] = null,
            };
            foreach (var t in info.GetProperty("special_tokens").EnumerateObject()) variables[t.Name] = t.Value.GetString();

            var label = $"{name} / {conversation} / add_generation_prompt={addGenerationPrompt}";
            if (c.TryGetProperty("text", out var text))
            {
                var actual = template.Render(variables, FixtureNow);
                Assert.True(text.GetString() == actual, $"{label}:\nexpected {JsonSerializer.Serialize(text.GetString())}\nactual   {JsonSerializer.Serialize(actual)}");
                rendered++;
            }
            else
            {
                var error = c.GetProperty("error").GetString()!;
                var e = Assert.ThrowsAny<JinjaException>(() => template.Render(variables, FixtureNow));
                if (e is JinjaRaisedException raised) Assert.Equal(error, raised.TemplateMessage);
            }
        }
        Assert.True(rendered >= 6, $"{name}: only {rendered} renderings in the fixture");
    }

    [Fact]
    public void The_fixture_holds_at_least_eight_real_templates_with_twelve_renderings_each()
    {
        var counts = Expected.Value.RootElement.GetProperty("cases").EnumerateArray()
            .Where(c => c.TryGetProperty("text", out _))
            .GroupBy(c => c.GetProperty("template").GetString())
            .ToDictionary(g => g.Key!, g => g.Count());
        Assert.True(counts.Count >= 8, $"{counts.Count} templates");
        Assert.All(counts, kv => Assert.True(kv.Value >= 12, $"{kv.Key}: {kv.Value}"));
    }

    private static List<object?> Messages(JsonElement conversation, bool parts)
    {
        var list = new List<object?>();
        foreach (var m in conversation.EnumerateArray())
        {
            var content = m.GetProperty("content").GetString();
            object? value = parts
                ? new List<object?> { new Dictionary<string, object?> { ["type"] = "text", ["text"] = content } }
                : content;
            list.Add(new Dictionary<string, object?> { ["role"] = m.GetProperty("role").GetString(), ["content"] = value });
        }
        return list;
    }
}

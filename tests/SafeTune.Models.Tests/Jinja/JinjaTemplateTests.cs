using SafeTune.Models.Chat;
using SafeTune.Models.Chat.Jinja;
using Xunit;

namespace SafeTune.Models.Tests.Jinja;

public sealed class JinjaTemplateTests
{
    private static string Render(string template, params (string Key, object? Value)[] variables) =>
        JinjaTemplate.Parse(template, "t").Render(variables.ToDictionary(v => v.Key, v => v.Value), () => new DateTime(2024, 7, 26, 9, 5, 0));

    private static List<object?> Chat(params (string Role, string Content)[] turns) =>
        [.. turns.Select(t => (object?)new Dictionary<string, object?> { ["role"] = t.Role, ["content"] = t.Content })];

    [Theory]
    [InlineData("{% for x in items %}{{ loop.index }}/{{ loop.length }}{{ ',' if not loop.last }}{% endfor %}", "1/3,2/3,3/3")]
    [InlineData("{% for x in items %}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{% if loop.first %}F{% endif %}{% endfor %}", "032F121210")]
    [InlineData("{% for x in items %}{{ loop.previtem | default('-') }}{{ loop.nextitem | default('-') }} {% endfor %}", "-b ac b- ")]
    [InlineData("{% for x in items if x != 'b' %}{{ x }}{% else %}none{% endfor %}", "ac")]
    [InlineData("{% for x in [] %}{{ x }}{% else %}empty{% endfor %}", "empty")]
    [InlineData("{% for x in items %}{% if x == 'b' %}{% continue %}{% endif %}{% if x == 'c' %}{% break %}{% endif %}{{ x }}{% endfor %}", "a")]
    [InlineData("{{ items[1:] | join('+') }} {{ items[::-1] | join }} {{ items[-1] }} {{ 'hello'[1:3] }} {{ items[:-1] | length }}", "b+c cba c el 2")]
    [InlineData("{% set ns = namespace(n=0, found=false) %}{% for x in items %}{% set ns.n = ns.n + 1 %}{% endfor %}{{ ns.n }}", "3")]
    [InlineData("{% set a, b = 1, 2 %}{{ a + b }} {{ 7 // 2 }} {{ 7 % 3 }} {{ 7 / 2 }} {{ 2 ** 3 }} {{ 1.0 }} {{ -3 | abs }}", "3 3 1 3.5 8 1.0 3")]
    [InlineData("{{ '  x  ' | trim }}|{{ ' y '.strip() }}|{{ 'ab'.upper() }}{{ 'CD' | lower }}|{{ 'hello world' | title }}|{{ 'abc'.startswith('a') }}{{ 'abc'.endswith(('x', 'c')) }}", "x|y|ABcd|Hello World|truetrue")]
    [InlineData("{{ 'a,b,c'.split(',') | length }} {{ 'a b  c'.split() | join('-') }} {{ 'aXbX'.replace('X', '_') }} {{ 'x' ~ 1 ~ nothing }}", "3 a-b-c a_b_ x1")]
    [InlineData("{{ {'b': 1, 'a': [true, none, 'é']} | tojson }} {{ {'a': 1} | tojson(indent=2) }}", "{\"b\": 1, \"a\": [true, null, \"é\"]} {\n  \"a\": 1\n}")]
    [InlineData("{% for k, v in {'x': 1, 'y': 2} | items %}{{ k }}={{ v }};{% endfor %}{{ {'x': 1}.get('y', 'dflt') }}", "x=1;y=2;dflt")]
    [InlineData("{{ undefined_thing | default('d') }} {{ '' | default('e', true) }} {{ none is none }} {{ x is defined }} {{ 3 is odd }} {{ 'a' is string }}", "d e true false true true")]
    [InlineData("{{ range(3) | list | tojson }} {{ range(1, 7, 2) | join(',') }} {{ [3, 1, 2] | sort | join }} {{ [1, 1, 2] | unique | length }}", "[0, 1, 2] 1,3,5 123 2")]
    [InlineData("{{ strftime_now('%d %b %Y') }} {{ strftime_now('%B %m %H:%M %%') }}", "26 Jul 2024 July 07 09:05 %")]
    [InlineData("{{ 'yes' if items | length > 2 else 'no' }} {{ 'a' in items }} {{ 'z' not in items }} {{ 'ell' in 'hello' }}", "yes true true true")]
    [InlineData("  {%- if true -%}  x  {%- endif -%}  \n{# comment #}\n{{- ' y ' -}}  ", "x y ")]
    [InlineData("{% if false %}a{% elif true %}b{% else %}c{% endif %}", "b")]
    [InlineData("{% set t %}[{{ items | first }}{{ items | last }}]{% endset %}{{ t }}", "[ac]")]
    public void Renders_the_features_chat_templates_use(string template, string expected)
    {
        Assert.Equal(expected, Render(template, ("items", new List<object?> { "a", "b", "c" })));
    }

    [Fact]
    public void Lstrip_and_trim_blocks_are_on_as_in_apply_chat_template()
    {
        const string template = "{% for m in messages %}\n    {% if m.role == 'user' %}\n[{{ m.content }}]\n    {% endif %}\n{% endfor %}\n";
        Assert.Equal("[hi]\n[yo]\n", Render(template, ("messages", Chat(("user", "hi"), ("assistant", "no"), ("user", "yo")))));
    }

    [Fact]
    public void Selectattr_and_map_read_attributes()
    {
        var messages = Chat(("system", "s"), ("user", "u1"), ("assistant", "a"), ("user", "u2"));
        Assert.Equal("u1,u2 | s,a | 2",
            Render("{{ messages | selectattr('role', 'equalto', 'user') | map(attribute='content') | join(',') }} | "
                   + "{{ messages | rejectattr('role', 'equalto', 'user') | map(attribute='content') | join(',') }} | "
                   + "{{ (messages | selectattr('role', 'eq', 'user') | list) | length }}", ("messages", messages)));
    }

    [Fact]
    public void Raise_exception_reports_the_templates_message_and_line()
    {
        var e = Assert.Throws<JinjaRaisedException>(() =>
            Render("{% for m in messages %}\n{% if m.role == 'system' %}\n{{ raise_exception('System role not supported') }}\n{% endif %}{% endfor %}",
                ("messages", Chat(("system", "x")))));
        Assert.Equal("System role not supported", e.TemplateMessage);
        Assert.Equal(3, e.Line);
        Assert.Equal("chat template 't' line 3: the template raised: System role not supported", e.Message);
    }

    [Theory]
    [InlineData("a\n{% macro m(x) %}{{ x }}{% endmacro %}", 2, "the 'macro' statement")]
    [InlineData("{{ x }}\n\n{{ 'a' | wordwrap(3) }}", 3, "filter 'wordwrap'")]
    [InlineData("line1\n{{ 3 is divisibleby(3) }}", 2, "test 'divisibleby' with arguments")]
    [InlineData("line1\n{{ 3 is sameas }}", 2, "test 'sameas'")]
    [InlineData("{% call foo() %}x{% endcall %}", 1, "the 'call' statement")]
    [InlineData("{{ cycler('a') }}", 1, "function 'cycler'")]
    [InlineData("{{ 'abc'.zfill(5) }}", 1, "method 'zfill'")]
    public void Unsupported_features_name_the_feature_and_line(string template, int line, string feature)
    {
        var e = Assert.ThrowsAny<JinjaUnsupportedException>(() => Render(template, ("x", 1)));
        Assert.Equal(feature, e.Feature);
        Assert.Equal(line, e.Line);
        Assert.Contains($"line {line}: unsupported Jinja feature: {feature}", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("{% if x %}never closed", "missing {% elif / else / endif %}")]
    [InlineData("{{ x + }}", "unexpected '}}'")]
    [InlineData("ok\n{% frobnicate %}", "unknown statement 'frobnicate'")]
    [InlineData("{{ 'unterminated }}", "unexpected end of template inside a string literal")]
    public void Syntax_errors_name_the_template_and_line(string template, string detail)
    {
        var e = Assert.ThrowsAny<JinjaException>(() => JinjaTemplate.Parse(template, "model/tokenizer_config.json"));
        Assert.Contains(detail, e.Detail, StringComparison.Ordinal);
        Assert.StartsWith("chat template 'model/tokenizer_config.json' line ", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Runtime_errors_name_the_line()
    {
        var e = Assert.ThrowsAny<JinjaException>(() => Render("one\ntwo\n{{ messages[0]['content'][0]['text'] + '!' }}", ("messages", Chat(("user", "hi")))));
        Assert.Equal(3, e.Line);
        Assert.Contains("undefined", e.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void Chat_template_boundary_comes_from_rendering_with_and_without_the_final_turn()
    {
        var t = new JinjaChatTemplate(
            "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}<|end|>{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}",
            "mini");
        ChatMessage[] conversation = [ChatMessage.User("Hi")];
        Assert.Equal("<|user|>Hi<|end|><|assistant|>", t.RenderPrompt(conversation));
        Assert.Equal("<|user|>Hi<|end|><|assistant|>Hello<|end|>", t.Render(conversation, "Hello"));
        Assert.Equal("Hello<|end|>", t.RenderResponse("Hello"));
        Assert.Equal("<|end|>", t.EndOfTurn);
    }

    [Fact]
    public void A_template_whose_prompt_is_not_a_prefix_is_refused_by_name()
    {
        // The generation prompt differs from the header of a rendered assistant turn.
        var t = new JinjaChatTemplate(
            "{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}{% if add_generation_prompt %}[bot]{% endif %}",
            "odd-template");
        var e = Assert.Throws<InvalidDataException>(() => t.Render([ChatMessage.User("Hi")], "Hello"));
        Assert.Contains("chat template 'odd-template'", e.Message, StringComparison.Ordinal);
        Assert.Contains("not a prefix", e.Message, StringComparison.Ordinal);
    }
}
